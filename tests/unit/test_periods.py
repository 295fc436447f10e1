"""The scoring period of an instant is its China-time month, whatever the instant's own zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.scoring.policy import load_scoring_policies, period_start, scoring_policy_at
from services.scoring.report import previous_month
from shared.clock import period_of

CHINA = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("instant", "period"),
    [
        (datetime(2026, 11, 30, 23, 30, tzinfo=CHINA), "2026-11"),
        (datetime(2026, 12, 1, 0, 30, tzinfo=CHINA), "2026-12"),
        (datetime(2026, 11, 30, 16, 30, tzinfo=UTC), "2026-12"),  # the same instant as above, written in UTC
        (datetime(2026, 12, 31, 16, 30, tzinfo=UTC), "2027-01"),  # still 2026 in UTC, January 2027 in China
    ],
)
def test_an_instant_falls_in_its_china_time_month(instant: datetime, period: str) -> None:
    assert period_of(instant) == period


def test_a_period_begins_at_midnight_china_time_and_is_scored_under_the_policy_then_in_force() -> None:
    policies = load_scoring_policies()

    assert period_start("2026-12") == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert scoring_policy_at(policies, period_start("2026-11")).version == "2026-01"
    assert scoring_policy_at(policies, period_start("2026-12")).version == "2026-12"


@pytest.mark.parametrize(("month", "before"), [("2026-12", "2026-11"), ("2027-01", "2026-12"), ("2026-10", "2026-09")])
def test_the_month_before_a_month_crosses_years(month: str, before: str) -> None:
    assert previous_month(month) == before
