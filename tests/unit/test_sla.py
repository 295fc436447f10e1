from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from services.escalation.calendar import WorkingCalendar
from services.escalation.clocks import Clock, Limits, Step, clocks_from_history, milestones
from services.escalation.policy import POLICY_DIR, InvalidPolicy, Limit, load_policy, policy_at
from shared.clock import CHINA_TIME
from shared.organisation import OrgUnit, escalation_target

calendar = WorkingCalendar()
policy = load_policy(POLICY_DIR / "2026-01.json")  # the defaults of DOMAIN.md, without a pause cap
HALL = OrgUnit(("广东", "深圳", "GD-SZ-001"))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CHINA_TIME)


def test_default_limits_follow_the_domain_brief() -> None:
    assert policy.limit("first_response", priority="normal", channel="app") == Limit(working_days=1)
    assert policy.limit("first_response", priority="urgent", channel="app") == Limit(working_hours=2)
    assert policy.limit("first_response", priority="normal", channel="regulator_appeal") == Limit(working_hours=4)
    assert policy.limit("resolution", priority="urgent", channel="app") == Limit(working_days=5)


def test_a_policy_with_a_bad_entry_is_refused_naming_it(tmp_path: Path) -> None:
    document = json.loads((POLICY_DIR / "2026-01.json").read_text())
    document["rules"][1]["first_response"] = {"working_days": 1, "working_hours": 2}
    (tmp_path / "2026-01.json").write_text(json.dumps(document))

    with pytest.raises(InvalidPolicy, match=r"2026-01\.json: rules\.1\.first_response: Value error, give exactly one"):
        load_policy(tmp_path / "2026-01.json")


def test_warnings_breach_and_escalations_fall_due_in_order_across_national_day() -> None:
    clock = Clock(started_at=at("2026-09-30 10:00"), limit=Limit(working_days=5))

    due = {(m.kind, m.level): m.due_at for m in milestones(clock, policy, calendar, HALL)}

    assert due[("breach", 1)] == at("2026-10-13 10:00")
    assert due[("warning", 0)] is not None and due[("warning", 0)] < due[("breach", 1)]
    ordered = [m.due_at for m in milestones(clock, policy, calendar, HALL)]
    assert ordered == sorted(ordered)  # type: ignore[type-var]
    assert due[("escalation", 2)] == calendar.add_working_time(at("2026-09-30 10:00"), 1.5 * 5 * timedelta(hours=9))


def test_a_pause_extends_every_milestone_by_exactly_the_paused_working_time() -> None:
    running = Clock(started_at=at("2026-10-12 09:00"), limit=Limit(working_hours=2))
    paused = Clock(started_at=at("2026-10-12 09:00"), limit=Limit(working_hours=2))
    paused.pause(at("2026-10-12 09:30"))
    paused.resume(at("2026-10-12 10:15"))

    before = {m.fraction: m.due_at for m in milestones(running, policy, calendar, HALL)}
    after = {m.fraction: m.due_at for m in milestones(paused, policy, calendar, HALL)}

    assert before[1.0] == at("2026-10-12 11:00")
    assert after[1.0] == at("2026-10-12 11:45")
    assert after[0.5] == at("2026-10-12 10:45")  # 30 minutes before the pause, 30 after


def test_a_paused_or_stopped_clock_has_no_pending_milestone() -> None:
    clock = Clock(started_at=at("2026-10-12 09:00"), limit=Limit(working_hours=2))
    clock.pause(at("2026-10-12 09:30"))
    assert {m.due_at for m in milestones(clock, policy, calendar, HALL)} == {None}
    clock.stop(at("2026-10-12 10:00"))
    assert clock.elapsed(calendar, at("2026-10-13 12:00")) == timedelta(minutes=30)


def test_a_reopened_clock_runs_on_from_where_it_stopped() -> None:
    clock = Clock(started_at=at("2026-10-12 09:00"), limit=Limit(working_hours=2))
    clock.stop(at("2026-10-12 10:00"))
    clock.restart()
    clock.resume(at("2026-10-13 09:00"))

    [breach] = [m for m in milestones(clock, policy, calendar, HALL) if m.kind == "breach"]
    assert breach.due_at == at("2026-10-13 10:00")


def test_the_ladder_climbs_from_the_hall_to_the_group() -> None:
    assert [str(escalation_target(HALL, level)) for level in (1, 2, 3, 4)] == [
        "group/广东/深圳/GD-SZ-001",
        "group/广东/深圳",
        "group/广东",
        "group",
    ]


LIMITS = Limits(first_response=Limit(working_hours=2), resolution=Limit(working_days=5))


def test_replayed_history_stops_the_response_clock_at_acknowledgement() -> None:
    clocks = clocks_from_history(
        [Step("ComplaintRegistered", at("2026-10-12 09:00")), Step("ComplaintAcknowledged", at("2026-10-12 10:30"))],
        LIMITS,
    )

    assert clocks["first_response"].elapsed(calendar, at("2026-10-13 12:00")) == timedelta(minutes=90)
    assert clocks["resolution"].stopped_at is None


def test_replayed_pause_moves_both_running_clocks() -> None:
    history = [
        Step("ComplaintRegistered", at("2026-10-12 09:00")),
        Step("ComplaintPaused", at("2026-10-12 09:30")),
        Step("ComplaintResumed", at("2026-10-12 10:00")),
    ]
    clocks = clocks_from_history(history, LIMITS)

    assert clocks["first_response"].due_at(calendar, 1.0, timedelta(hours=9)) == at("2026-10-12 11:30")
    assert clocks["resolution"].elapsed(calendar, at("2026-10-12 12:00")) == timedelta(hours=2, minutes=30)


def test_a_reopen_within_the_window_resumes_the_original_resolution_clock_and_a_late_one_starts_anew() -> None:
    closed = [
        Step("ComplaintRegistered", at("2026-10-12 09:00")),
        Step("ComplaintAcknowledged", at("2026-10-12 09:10")),
        Step("ComplaintClosed", at("2026-10-12 10:00")),
    ]
    soon = clocks_from_history([*closed, Step("ComplaintReopened", at("2026-10-13 09:00"))], LIMITS)
    late = clocks_from_history([*closed, Step("ComplaintReopened", at("2026-12-14 09:00"))], LIMITS)

    assert soon["resolution"].elapsed(calendar, at("2026-10-13 10:00")) == timedelta(hours=2)
    assert late["resolution"].started_at == at("2026-12-14 09:00")


def test_the_policy_in_force_is_chosen_by_effective_date() -> None:
    newer = policy.model_copy(update={"version": "2026-07", "effective_from": at("2026-07-01 00:00")})

    assert policy_at([policy, newer], at("2026-06-30 23:59")).version == "2026-01"
    assert policy_at([policy, newer], at("2026-07-01 00:00")).version == "2026-07"
    with pytest.raises(InvalidPolicy, match="no SLA policy was in force"):
        policy_at([newer], at("2026-01-01 00:00"))


def test_a_pause_past_its_cap_stops_the_clock_no_longer_unless_a_supervisor_approved_it() -> None:
    # 09:00-18:00 working days: 30 minutes run, then a pause at 09:30 capped at 1 working hour.
    history = [Step("ComplaintRegistered", at("2026-10-12 09:00")), Step("ComplaintPaused", at("2026-10-12 09:30"))]
    limits = Limits(Limit(working_hours=2), Limit(working_days=5), pause_cap=timedelta(hours=1))

    capped = clocks_from_history(history, limits)["first_response"]
    approved = clocks_from_history([*history, Step("ComplaintPauseApproved", at("2026-10-12 10:00"))], limits)
    resumed_late = clocks_from_history([*history, Step("ComplaintResumed", at("2026-10-12 14:30"))], limits)

    # Runs again at 10:30, the cap's end, with 1.5 of its 2 hours left: the breach falls due at 12:00.
    assert {m.fraction: m.due_at for m in milestones(capped, policy, calendar, HALL)}[1.0] == at("2026-10-12 12:00")
    assert capped.elapsed(calendar, at("2026-10-12 11:30")) == timedelta(hours=1, minutes=30)
    assert {m.due_at for m in milestones(approved["first_response"], policy, calendar, HALL)} == {None}
    # 5.5 working hours since 09:00, of which the pause stopped the clock for its 1 hour cap only.
    assert resumed_late["first_response"].elapsed(calendar, at("2026-10-12 14:30")) == timedelta(hours=4, minutes=30)
