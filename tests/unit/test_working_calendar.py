from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from services.escalation.calendar import BusinessHours, UnknownCalendarYear, WorkingCalendar, YearCalendar
from shared.clock import CHINA_TIME

calendar = WorkingCalendar()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CHINA_TIME)


def test_five_working_days_across_national_day_land_after_the_adjusted_saturday() -> None:
    assert calendar.add_working_days(at("2026-09-30 10:00"), 5) == at("2026-10-13 10:00")


@pytest.mark.parametrize(
    ("day", "working"),
    [
        ("2026-10-01", False),  # National Day
        ("2026-10-07", False),
        ("2026-10-10", True),  # adjusted Saturday
        ("2026-10-11", False),  # ordinary Sunday
        ("2026-02-14", True),  # adjusted Saturday before the Spring Festival
        ("2026-02-16", False),  # Spring Festival
        ("2026-02-23", False),
        ("2026-02-24", True),
        ("2026-02-28", True),  # adjusted Saturday after it
    ],
)
def test_statutory_holidays_and_adjusted_working_days(day: str, working: bool) -> None:
    assert calendar.is_working_day(date.fromisoformat(day)) is working


def test_one_working_day_before_the_spring_festival_is_the_adjusted_saturday_then_the_24th() -> None:
    friday = at("2026-02-13 15:00")
    assert calendar.add_working_days(friday, 1) == at("2026-02-14 15:00")
    assert calendar.add_working_days(friday, 2) == at("2026-02-24 15:00")


def test_working_hours_stop_at_closing_and_resume_after_the_holiday() -> None:
    assert calendar.add_working_time(at("2026-09-30 17:00"), timedelta(hours=2)) == at("2026-10-08 10:00")


def test_a_start_at_midnight_counts_from_opening_time() -> None:
    assert calendar.add_working_time(at("2026-10-12 00:00"), timedelta(hours=2)) == at("2026-10-12 11:00")
    assert calendar.add_working_days(at("2026-10-11 23:59"), 1) == at("2026-10-13 09:00")


def test_a_deadline_ending_exactly_at_closing_stays_on_that_day() -> None:
    assert calendar.add_working_time(at("2026-10-12 16:00"), timedelta(hours=2)) == at("2026-10-12 18:00")


def test_working_time_between_counts_only_business_hours_on_working_days() -> None:
    assert calendar.working_time_between(at("2026-09-30 17:00"), at("2026-10-08 10:00")) == timedelta(hours=2)
    assert calendar.working_time_between(at("2026-10-09 17:30"), at("2026-10-10 09:30")) == timedelta(hours=1)
    assert calendar.working_time_between(at("2026-10-12 10:00"), at("2026-10-12 09:00")) == timedelta(0)


def test_business_hours_can_differ() -> None:
    long_hours = WorkingCalendar(hours=BusinessHours(opens=datetime.min.time(), closes=datetime.max.time()))
    assert long_hours.add_working_time(at("2026-10-12 23:00"), timedelta(hours=2)) > at("2026-10-13 00:00")


def test_a_year_without_data_is_an_error_not_a_guess() -> None:
    with pytest.raises(UnknownCalendarYear, match=r"add services/escalation/calendars/2099\.json"):
        calendar.is_working_day(date(2099, 1, 5))


def test_a_data_file_defines_a_year_the_package_does_not_know() -> None:
    year_2099 = YearCalendar(
        year=2099,
        source="test",
        holidays=frozenset({date(2099, 1, 1)}),
        working_weekend_days=frozenset({date(2099, 1, 3)}),
    )
    with_data = WorkingCalendar(year_files={2099: year_2099})

    assert with_data.is_working_day(date(2099, 1, 1)) is False  # a Thursday made holiday
    assert with_data.is_working_day(date(2099, 1, 3)) is True  # a Saturday made working
    assert with_data.is_working_day(date(2099, 1, 4)) is False  # an ordinary Sunday
