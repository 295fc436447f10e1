"""The SLA clocks aggregate and its use cases, on the in-memory event store."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime

import pytest
from prometheus_client import REGISTRY

from services.escalation.application import EscalationApplication, Observation, UnknownSubject
from services.escalation.calendar import Calendars
from services.escalation.clocks import Step
from services.escalation.metrics import SlaLimits
from services.escalation.outbox import to_contract
from services.escalation.policy import Limit, Rule, load_policies
from services.escalation.tracking import ClockStop, Opening, SlaRules, SlaSubject, breach_deadlines, sla_subject_id
from shared.clock import CHINA_TIME
from shared.contracts import SlaClockStoppedV1, SlaScheduledV1
from shared.organisation import OrgUnit

HALL = OrgUnit(("广东", "深圳", "GD-SZ-001"))
POLICIES = load_policies()
RULES = SlaRules(POLICIES, Calendars())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CHINA_TIME)


class Time:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def urgent_complaint(received_at: datetime) -> Opening:
    return Opening(
        subject_id=uuid.uuid4(),
        kind="complaint",
        hall=HALL,
        started_by="ComplaintRegistered",
        started_at=received_at,
        source_event_id=uuid.uuid4(),
        category="billing",
        priority="urgent",
        channel="app",
    )


def verdicts(application: EscalationApplication, subject_id: uuid.UUID) -> list[ClockStop]:
    subject = application.subject(subject_id)
    assert subject is not None
    return subject.verdicts


def fired(application: EscalationApplication, subject_id: uuid.UUID) -> list[tuple[str, str, int]]:
    subject = application.subject(subject_id)
    assert subject is not None
    events = application.repository.event_store.get(subject.id)
    return [(e.clock, e.milestone, e.level) for e in events if isinstance(e, SlaSubject.MilestoneReached)]


def test_milestones_fire_in_order_once_each_as_time_passes() -> None:
    time = Time(at("2026-10-12 09:00"))
    application = EscalationApplication({}, RULES, time)
    opening = urgent_complaint(at("2026-10-12 09:00"))
    due = application.open(opening)
    assert due.due_at == at("2026-10-12 10:00")  # half of 2 working hours

    for hour in ("10:00", "10:36", "11:00", "12:00", "13:00", "14:00"):
        time.now = at(f"2026-10-12 {hour}")
        application.fire_due([due.sla_id])
        application.fire_due([due.sla_id])  # a second scheduler pass finds nothing more

    response = [entry for entry in fired(application, opening.subject_id) if entry[0] == "first_response"]
    assert response == [
        ("first_response", "warning", 0),
        ("first_response", "warning", 0),
        ("first_response", "breach", 1),
        ("first_response", "escalation", 2),
        ("first_response", "escalation", 3),
        ("first_response", "escalation", 4),
    ]


def test_a_breach_that_fell_due_before_the_acknowledgement_fires_even_if_the_acknowledgement_is_seen_first() -> None:
    time = Time(at("2026-10-12 09:00"))
    application = EscalationApplication({}, RULES, time)
    opening = urgent_complaint(at("2026-10-12 09:00"))
    application.open(opening)
    time.now = at("2026-10-12 11:30")  # no scheduler pass since: the acknowledgement arrives first

    due = application.observe(opening.subject_id, uuid.uuid4(), "ComplaintAcknowledged", at("2026-10-12 11:20"))

    assert [entry for entry in fired(application, opening.subject_id) if entry[0] == "first_response"] == [
        ("first_response", "warning", 0),
        ("first_response", "warning", 0),
        ("first_response", "breach", 1),
    ]
    assert due.open and due.due_at is not None  # the resolution clock still runs


def test_an_event_seen_twice_is_recorded_once_and_closing_ends_the_watch() -> None:
    time = Time(at("2026-10-12 09:30"))
    application = EscalationApplication({}, RULES, time)
    opening = urgent_complaint(at("2026-10-12 09:00"))
    application.open(opening)
    closing = uuid.uuid4()

    first = application.observe(opening.subject_id, closing, "ComplaintClosed", at("2026-10-12 09:20"))
    again = application.observe(opening.subject_id, closing, "ComplaintClosed", at("2026-10-12 09:20"))

    assert first == again and not first.open and first.due_at is None


def test_a_pause_moves_the_next_deadline_by_the_paused_working_time() -> None:
    time = Time(at("2026-10-12 09:30"))
    application = EscalationApplication({}, RULES, time)
    opening = urgent_complaint(at("2026-10-12 09:00"))
    application.open(opening)

    paused = application.observe(opening.subject_id, uuid.uuid4(), "ComplaintPaused", at("2026-10-12 09:30"))
    resumed = application.observe(opening.subject_id, uuid.uuid4(), "ComplaintResumed", at("2026-10-12 10:15"))

    assert paused.open and paused.due_at is None
    assert resumed.due_at == at("2026-10-12 10:45")


def test_a_new_policy_recalculates_open_clocks_once_recording_old_and_new_deadlines() -> None:
    time = Time(at("2026-10-12 09:30"))
    application = EscalationApplication({}, RULES, time)
    opening = urgent_complaint(at("2026-10-12 09:00"))
    application.open(opening)
    stricter = POLICIES[-1].model_copy(
        update={
            "version": "2026-10",
            "effective_from": at("2026-10-01 00:00"),
            "rules": [*POLICIES[-1].rules, Rule(match={"priority": "urgent"}, first_response=Limit(working_hours=1))],
        }
    )
    application.rules = SlaRules([*POLICIES, stricter], RULES.calendars)
    subject = application.subject(opening.subject_id)
    assert subject is not None

    dues, changed = application.recalculate([subject.id])
    _, changed_again = application.recalculate([subject.id])

    assert (changed, changed_again) == (1, 0)
    assert dues[0].due_at == at("2026-10-12 09:30")  # half of the new 1 working hour
    recalculated = application.subject(opening.subject_id)
    assert recalculated is not None
    assert recalculated.deadlines["first_response"] == at("2026-10-12 10:00").isoformat()
    assert subject.deadlines["first_response"] == at("2026-10-12 11:00").isoformat()


def test_a_rectification_order_clock_stops_at_the_report_and_runs_on_after_a_rejection() -> None:
    time = Time(at("2026-10-12 09:00"))
    application = EscalationApplication({}, RULES, time)
    order = Opening(
        subject_id=uuid.uuid4(),
        kind="rectification_order",
        hall=HALL,
        started_by="RectificationOrderOpened",
        started_at=at("2026-10-12 09:00"),
        source_event_id=uuid.uuid4(),
    )
    application.open(order)
    reported = application.observe(
        order.subject_id, uuid.uuid4(), "RectificationOrderRectified", at("2026-10-13 09:00")
    )
    rejected = application.observe(order.subject_id, uuid.uuid4(), "RectificationOrderRejected", at("2026-10-14 09:00"))

    assert not reported.open
    # 3 working days; one was used before the report, so two remain after the rejection: the close of the 15th.
    subject = application.subject(order.subject_id)
    assert subject is not None
    [plan] = subject.plans(RULES)
    assert plan.deadline == at("2026-10-15 18:00") and rejected.open


def test_a_policy_that_moves_the_breach_does_not_fire_it_again() -> None:
    time = Time(at("2026-10-12 11:30"))
    application = EscalationApplication({}, RULES, time)
    opening = urgent_complaint(at("2026-10-12 09:00"))
    due = application.open(opening)  # the breach at 11:00 fires on opening
    earlier_breach = POLICIES[0].model_copy(update={"breach_at": 0.9, "warning_thresholds": [0.4, 0.7]})
    application.rules = SlaRules([earlier_breach], RULES.calendars)

    application.recalculate([due.sla_id])
    application.fire_due([due.sla_id])

    response = [entry for entry in fired(application, opening.subject_id) if entry[0] == "first_response"]
    assert [milestone for _, milestone, _ in response] == ["warning", "warning", "breach"]


def test_a_stopped_clock_is_counted_once_met_or_breached_with_its_working_time() -> None:
    labels = {"channel": "app", "category": "billing", "priority": "urgent", "province": "广东"}

    def counted(outcome: str) -> float:
        return REGISTRY.get_sample_value("complaints_first_responded_total", {**labels, "sla": outcome}) or 0.0

    before = counted("met"), counted("breached")
    time = Time(at("2026-10-12 09:00"))
    application = EscalationApplication({}, RULES, time)
    on_time, late = urgent_complaint(at("2026-10-12 09:00")), urgent_complaint(at("2026-10-12 09:00"))
    for opening in (on_time, late):
        application.open(opening)
    time.now = at("2026-10-12 12:00")  # past the 2 working hours
    acknowledged = uuid.uuid4()
    application.observe(on_time.subject_id, acknowledged, "ComplaintAcknowledged", at("2026-10-12 10:30"))
    application.observe(on_time.subject_id, acknowledged, "ComplaintAcknowledged", at("2026-10-12 10:30"))  # again
    application.observe(late.subject_id, uuid.uuid4(), "ComplaintAcknowledged", at("2026-10-12 11:30"))

    assert (counted("met") - before[0], counted("breached") - before[1]) == (1, 1)
    [late_verdict] = [v for v in verdicts(application, late.subject_id) if v.clock == "first_response"]
    assert (late_verdict.working_seconds, late_verdict.breached) == (2.5 * 3600, True)


def test_a_complaint_reopened_within_the_window_and_closed_again_is_resolved_once() -> None:
    labels = {"channel": "app", "category": "billing", "priority": "urgent", "province": "广东"}

    def resolved() -> float:
        return sum(
            REGISTRY.get_sample_value("complaints_resolved_total", {**labels, "sla": outcome}) or 0.0
            for outcome in ("met", "breached")
        )

    before = resolved()
    time = Time(at("2026-10-12 09:00"))
    application = EscalationApplication({}, RULES, time)
    opening = urgent_complaint(at("2026-10-12 09:00"))
    application.open(opening)
    steps = [("ComplaintAcknowledged", "09:10"), ("ComplaintClosed", "10:00")]
    steps += [("ComplaintReopened", "11:00"), ("ComplaintClosed", "12:00")]
    for event_type, hour in steps:
        time.now = at(f"2026-10-12 {hour}")
        application.observe(opening.subject_id, uuid.uuid4(), event_type, at(f"2026-10-12 {hour}"))

    assert [(v.clock, v.stopped_at, v.reopened) for v in verdicts(application, opening.subject_id)] == [
        ("first_response", at("2026-10-12 09:10"), False),
        ("resolution", at("2026-10-12 10:00"), False),
        ("resolution", at("2026-10-12 12:00"), True),  # the same clock ran on: 2 of its working hours in all
    ]
    assert verdicts(application, opening.subject_id)[-1].working_seconds == 2 * 3600
    assert resolved() - before == 1


def test_a_closure_without_acknowledgement_stops_both_clocks_and_a_pause_stops_none() -> None:
    time = Time(at("2026-10-12 09:00"))
    application = EscalationApplication({}, RULES, time)
    opening = urgent_complaint(at("2026-10-12 09:00"))
    application.open(opening)

    time.now = at("2026-10-12 09:40")
    application.observe(opening.subject_id, uuid.uuid4(), "ComplaintPaused", at("2026-10-12 09:30"))
    paused = verdicts(application, opening.subject_id)
    application.observe(opening.subject_id, uuid.uuid4(), "ComplaintClosed", at("2026-10-12 09:40"))

    assert paused == []
    assert [(v.clock, v.breached, v.working_seconds) for v in verdicts(application, opening.subject_id)] == [
        ("first_response", False, 30 * 60),  # paused from 09:30: the closure is its first response
        ("resolution", False, 30 * 60),
    ]


def test_a_redelivered_step_gives_no_second_verdict_and_the_verdict_is_published_without_personal_data() -> None:
    time = Time(at("2026-10-12 12:00"))
    application = EscalationApplication({}, RULES, time)
    opening = urgent_complaint(at("2026-10-12 09:00"))
    application.open(opening)  # already past the 2 working hours: the breach fires at once
    acknowledged = uuid.uuid4()
    for _ in range(2):
        application.observe(opening.subject_id, acknowledged, "ComplaintAcknowledged", at("2026-10-12 11:30"))

    subject = application.subject(opening.subject_id)
    assert subject is not None
    published = [
        contract
        for stored in application.repository.event_store.get(subject.id)
        if isinstance(contract := to_contract(stored), SlaClockStoppedV1)
    ]
    assert published == [
        SlaClockStoppedV1(
            subject_id=opening.subject_id,
            subject_kind="complaint",
            subject_started_at=at("2026-10-12 09:00"),
            hall_id="GD-SZ-001",
            clock="first_response",
            clock_started_at=at("2026-10-12 09:00"),
            outcome="breached",
            working_seconds=2.5 * 3600,
            limit_working_seconds=2 * 3600,
            policy_version="2026-01",
            reopened=False,
            stopped_at=at("2026-10-12 11:30"),
        )
    ]


def observe_as_before_verdicts(application: EscalationApplication, subject_id: uuid.UUID, step: str, when: str) -> None:
    """What `observe` stored before escalation recorded verdicts: the step, and the milestones due before it."""
    subject = application.subject(subject_id)
    assert subject is not None
    instant = at(f"2026-10-12 {when}")
    subject.fire_due(RULES, up_to=instant, now=instant)
    deadlines = breach_deadlines(subject.plans(RULES, [*subject.history, Step(step, instant)]))
    subject._observed(
        subject_id=subject.subject_id,
        event_id=uuid.uuid4(),
        event_type=step,
        at=instant,
        detail={},
        deadlines=deadlines,
    )
    application.save(subject)


def test_the_verdicts_missing_from_a_subject_stored_before_verdicts_are_those_observe_records_now() -> None:
    steps = [("ComplaintAcknowledged", "11:30"), ("ComplaintClosed", "12:00")]
    steps += [("ComplaintReopened", "13:00"), ("ComplaintClosed", "14:00")]
    time = Time(at("2026-10-12 09:00"))
    live, stored_before = EscalationApplication({}, RULES, time), EscalationApplication({}, RULES, time)
    opening = urgent_complaint(at("2026-10-12 09:00"))
    for application in (live, stored_before):
        application.open(opening)
    for step, when in steps:
        time.now = at(f"2026-10-12 {when}")
        live.observe(opening.subject_id, uuid.uuid4(), step, at(f"2026-10-12 {when}"))
        observe_as_before_verdicts(stored_before, opening.subject_id, step, when)
    sla_id = sla_subject_id(opening.subject_id)
    assert verdicts(stored_before, opening.subject_id) == []

    recorded = stored_before.record_missing_verdicts([sla_id])
    recorded_again = stored_before.record_missing_verdicts([sla_id])

    assert (recorded, recorded_again) == (3, 0)
    assert verdicts(stored_before, opening.subject_id) == verdicts(live, opening.subject_id)
    assert [v.breached for v in verdicts(live, opening.subject_id)] == [True, False, False]


def test_the_limits_drawn_as_targets_are_those_in_force_at_the_scrape() -> None:
    faster = POLICIES[-1].model_copy(
        update={
            "version": "faster",
            "effective_from": at("2027-07-01 00:00"),
            "rules": [*POLICIES[-1].rules, Rule(match={"priority": "urgent"}, first_response=Limit(working_hours=1))],
        }
    )
    time = Time(at("2027-06-30 23:59"))
    limits = SlaLimits(SlaRules([*POLICIES, faster], RULES.calendars), time)

    def urgent_first_response() -> float:
        [family] = limits.collect()
        [value] = [s.value for s in family.samples if s.labels == {"clock": "first_response", "priority": "urgent"}]
        return value

    before = urgent_first_response()
    time.now = at("2027-07-01 00:00")

    assert (before, urgent_first_response()) == (2 * 3600, 3600)


def test_with_no_policy_in_force_no_limit_is_drawn_and_the_scrape_goes_on() -> None:
    limits = SlaLimits(RULES, Time(at("2025-06-30 12:00")))

    [family] = limits.collect()

    assert (family.name, family.samples) == ("sla_limit_working_seconds", [])


def test_a_batch_of_changes_leaves_every_subject_as_tracking_them_one_at_a_time_does() -> None:
    time = Time(at("2026-10-12 12:00"))
    one_at_a_time, batched = EscalationApplication({}, RULES, time), EscalationApplication({}, RULES, time)
    first, second = urgent_complaint(at("2026-10-12 09:00")), urgent_complaint(at("2026-10-12 09:30"))
    acknowledged = uuid.uuid4()
    changes: list[Opening | Observation] = [
        first,
        second,
        Observation(first.subject_id, acknowledged, "ComplaintAcknowledged", at("2026-10-12 10:30")),
        Observation(second.subject_id, uuid.uuid4(), "ComplaintAcknowledged", at("2026-10-12 11:45")),
        Observation(first.subject_id, acknowledged, "ComplaintAcknowledged", at("2026-10-12 10:30")),  # again
        Observation(first.subject_id, uuid.uuid4(), "ComplaintClosed", at("2026-10-12 11:50")),
    ]
    for change in changes:
        one_at_a_time.track([(change, None)])

    dues = batched.track([(change, None) for change in changes])

    assert [due.sla_id for due in dues] == [sla_subject_id(first.subject_id), sla_subject_id(second.subject_id)]
    for opening, due in zip((first, second), dues, strict=True):
        expected = one_at_a_time.subject(opening.subject_id)
        assert expected is not None
        assert due == one_at_a_time.due(expected)
        assert verdicts(batched, opening.subject_id) == expected.verdicts
        assert fired(batched, opening.subject_id) == fired(one_at_a_time, opening.subject_id)
    assert [v.clock for v in verdicts(batched, first.subject_id)] == ["first_response", "resolution"]
    assert [(v.clock, v.breached) for v in verdicts(batched, second.subject_id)] == [("first_response", True)]

    redelivered = batched.track([(first, None), (second, None)])  # openings again, in a later batch

    assert redelivered == dues


def test_a_batch_with_a_step_of_an_unknown_subject_is_refused_whole() -> None:
    application = EscalationApplication({}, RULES, Time(at("2026-10-12 09:00")))
    opening = urgent_complaint(at("2026-10-12 09:00"))
    stray = Observation(uuid.uuid4(), uuid.uuid4(), "ComplaintAcknowledged", at("2026-10-12 09:05"))

    with pytest.raises(UnknownSubject):
        application.track([(opening, None), (stray, None)])

    assert application.subject(opening.subject_id) is None


def test_each_step_publishes_the_clocks_deadlines_for_the_work_queues_and_old_steps_publish_none() -> None:
    time = Time(at("2026-10-12 09:30"))
    application = EscalationApplication({}, RULES, time)
    opening = urgent_complaint(at("2026-10-12 09:00"))
    application.open(opening)
    application.observe(opening.subject_id, uuid.uuid4(), "ComplaintAcknowledged", at("2026-10-12 09:30"))
    subject = application.subject(opening.subject_id)
    assert subject is not None

    stored = list(application.repository.event_store.get(subject.id))
    scheduled = [contract for event in stored if isinstance(contract := to_contract(event), SlaScheduledV1)]

    assert [s.deadlines["first_response"] for s in scheduled] == [at("2026-10-12 11:00"), None]
    assert all(s.subject_id == opening.subject_id and s.deadlines["resolution"] is not None for s in scheduled)
    observed = next(event for event in stored if isinstance(event, SlaSubject.Observed))
    as_stored = application.mapper.to_stored_event(observed)
    state = json.loads(as_stored.state)
    del state["subject_id"], state["class_version"]  # as a step was stored before the subject was kept
    before = application.mapper.to_domain_event(replace(as_stored, state=json.dumps(state).encode()))
    assert isinstance(before, SlaSubject.Observed) and to_contract(before) is None
