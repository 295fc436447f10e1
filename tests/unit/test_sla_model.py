"""The SLA model as data (policy 2026-12-02): pause reasons, escalation on arrival, reclassification,
keeping the customer informed; and the catalogue the policy's values come from."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from services.escalation.application import EscalationApplication
from services.escalation.calendar import Calendars
from services.escalation.outbox import to_contract
from services.escalation.policy import POLICY_DIR, InvalidPolicy, load_policy
from services.escalation.tracking import Opening, SlaRules, SlaSubject
from shared.catalog import CATALOG_DIR, InvalidCatalog, load_catalogs
from shared.contracts import SlaEscalatedV2
from tests.unit.test_sla_subjects import HALL, RULES, Time, at

MONDAY = "2026-12-07"  # a working week under the 2026-12-02 policy: 09:00-18:00, Monday to Friday


def complaint(received_at: datetime, priority: str = "normal", channel: str = "app") -> Opening:
    return Opening(
        subject_id=uuid.uuid4(),
        kind="complaint",
        hall=HALL,
        started_by="ComplaintRegistered",
        started_at=received_at,
        source_event_id=uuid.uuid4(),
        category="billing",
        priority=priority,
        channel=channel,
    )


def stored(application: EscalationApplication, opening: Opening) -> SlaSubject:
    subject = application.subject(opening.subject_id)
    assert subject is not None
    return subject


def fired(application: EscalationApplication, opening: Opening) -> list[SlaSubject.MilestoneReached]:
    events = application.repository.event_store.get(stored(application, opening).id)
    return [event for event in events if isinstance(event, SlaSubject.MilestoneReached)]


def test_reclassifying_normal_to_urgent_an_hour_after_receipt_moves_the_response_deadline_to_two_hours_after_it() -> (
    None
):
    time = Time(at(f"{MONDAY} 09:00"))
    application = EscalationApplication({}, RULES, time)
    opening = complaint(at(f"{MONDAY} 09:00"))
    application.open(opening)
    assert stored(application, opening).deadlines["first_response"] == at(f"{MONDAY} 18:00").isoformat()

    time.now = at(f"{MONDAY} 10:00")
    application.observe(
        opening.subject_id,
        uuid.uuid4(),
        "ComplaintReclassified",
        time.now,
        priority="urgent",
        category="billing",
        channel="app",
    )

    subject = stored(application, opening)
    assert subject.deadlines["first_response"] == at(f"{MONDAY} 11:00").isoformat()
    assert subject.priority == "urgent"
    # Half of the new 2 hours was used up at 10:00: that warning is due at once; the breach waits for 11:00.
    assert application.due(subject).due_at == at(f"{MONDAY} 10:00")
    application.fire_due([subject.id])
    assert [(m.clock, m.milestone, m.fraction) for m in fired(application, opening)] == [
        ("first_response", "warning", 0.5)
    ]


def test_a_pause_whose_reason_does_not_stop_the_response_clock_leaves_it_running() -> None:
    time = Time(at(f"{MONDAY} 09:30"))
    application = EscalationApplication({}, RULES, time)
    network, customer = complaint(at(f"{MONDAY} 09:00")), complaint(at(f"{MONDAY} 09:00"))
    for opening, reason in ((network, "awaiting_network_fix"), (customer, "awaiting_customer")):
        application.open(opening)
        application.observe(opening.subject_id, uuid.uuid4(), "ComplaintPaused", time.now, reason_code=reason)

    assert stored(application, network).deadlines["first_response"] == at(f"{MONDAY} 18:00").isoformat()
    # Waiting on the customer stops it too, for at most the policy's 1 working day (to Tuesday 09:30), after
    # which 8.5 of its 9 hours are left.
    assert stored(application, customer).deadlines["first_response"] == at("2026-12-08 18:00").isoformat()
    time.now = at(f"{MONDAY} 14:00")
    application.observe(network.subject_id, uuid.uuid4(), "ComplaintResumed", time.now)
    # The resolution clock it did stop lost the 4.5 paused hours: 5 working days from receipt, plus them.
    assert stored(application, network).deadlines["resolution"] == at("2026-12-14 13:30").isoformat()


def test_a_major_complaint_is_escalated_to_its_city_at_registration_and_its_breach_goes_above_that() -> None:
    time = Time(at(f"{MONDAY} 09:00"))
    application = EscalationApplication({}, RULES, time)
    major = complaint(at(f"{MONDAY} 09:00"), priority="major")
    appeal = complaint(at(f"{MONDAY} 09:00"), channel="regulator_appeal")
    application.open(major)
    application.open(appeal)

    [raised] = fired(application, major)
    published = to_contract(raised)
    assert isinstance(published, SlaEscalatedV2)
    assert (published.level, published.target_unit, published.raised_by) == (2, "group/广东/深圳", "classification")
    assert published.due_at == at(f"{MONDAY} 09:00")
    assert [(m.milestone, m.level) for m in fired(application, appeal)] == [("raised", 3)]

    time.now = at("2026-12-31 18:00")  # long past every limit
    application.fire_due([stored(application, major).id])
    ladder = [(m.clock, m.milestone, m.level) for m in fired(application, major) if m.milestone != "warning"]
    assert ladder == [
        ("resolution", "raised", 2),
        ("first_response", "breach", 3),
        ("first_response", "escalation", 4),
        ("resolution", "breach", 3),
        ("resolution", "escalation", 4),
    ]


def test_reclassifying_a_complaint_as_major_raises_it_then_and_not_again() -> None:
    time = Time(at(f"{MONDAY} 09:00"))
    application = EscalationApplication({}, RULES, time)
    opening = complaint(at(f"{MONDAY} 09:00"))
    application.open(opening)
    time.now = at(f"{MONDAY} 09:20")
    major = {"priority": "major", "category": "billing", "channel": "app"}

    for _ in range(2):  # the scheduler's pass after each
        application.observe(opening.subject_id, uuid.uuid4(), "ComplaintReclassified", time.now, **major)
        application.fire_due([stored(application, opening).id])

    assert [(m.milestone, m.level, m.timestamp) for m in fired(application, opening)] == [
        ("raised", 2, at(f"{MONDAY} 09:20"))
    ]


def test_the_keep_informed_clock_warns_after_a_working_day_without_contact_and_each_contact_starts_it_again() -> None:
    time = Time(at(f"{MONDAY} 09:00"))
    application = EscalationApplication({}, RULES, time)
    opening = complaint(at(f"{MONDAY} 09:00"))
    application.open(opening)
    application.observe(opening.subject_id, uuid.uuid4(), "ComplaintAcknowledged", at(f"{MONDAY} 09:10"))
    application.observe(opening.subject_id, uuid.uuid4(), "CustomerContacted", at(f"{MONDAY} 15:00"))

    def informed() -> list[datetime]:
        return [m.due_at for m in fired(application, opening) if m.clock == "keep_informed"]

    time.now = at("2026-12-08 14:59")
    application.fire_due([stored(application, opening).id])
    assert informed() == []
    time.now = at("2026-12-08 15:00")
    application.fire_due([stored(application, opening).id])
    assert informed() == [at("2026-12-08 15:00")]
    assert "keep_informed" not in stored(application, opening).deadlines  # it warns; it has no limit to breach

    application.observe(opening.subject_id, uuid.uuid4(), "CallbackMade", at("2026-12-08 16:00"))
    time.now = at("2026-12-09 16:00")
    application.fire_due([stored(application, opening).id])
    assert informed() == [at("2026-12-08 15:00"), at("2026-12-09 16:00")]
    application.observe(opening.subject_id, uuid.uuid4(), "ComplaintClosed", at("2026-12-09 17:00"))
    assert {verdict.clock for verdict in stored(application, opening).verdicts} == {"first_response", "resolution"}


def test_a_reopen_after_the_policys_window_starts_the_resolution_clock_afresh(tmp_path: Path) -> None:
    document = json.loads((POLICY_DIR / "2026-12-02.json").read_text())
    document["reopen_window_days"] = 1
    (tmp_path / "2026-12-02.json").write_text(json.dumps(document))
    rules = SlaRules([load_policy(tmp_path / "2026-12-02.json")], Calendars())
    time = Time(at(f"{MONDAY} 09:00"))
    application = EscalationApplication({}, rules, time)
    opening = complaint(at(f"{MONDAY} 09:00"))
    application.open(opening)
    application.observe(opening.subject_id, uuid.uuid4(), "ComplaintClosed", at(f"{MONDAY} 10:00"))

    application.observe(opening.subject_id, uuid.uuid4(), "ComplaintReopened", at("2026-12-09 10:00"))

    [plan] = [plan for plan in stored(application, opening).plans(rules) if plan.name == "resolution"]
    assert plan.clock.started_at == at("2026-12-09 10:00")


def test_a_policy_naming_a_value_the_catalogue_lacks_is_refused_naming_it(tmp_path: Path) -> None:
    document = json.loads((POLICY_DIR / "2026-12-02.json").read_text())
    document["raised_on_arrival"][0]["match"] = {"priority": "critical"}
    document["pause_reasons"]["awaiting_godot"] = {"pauses": ["resolution"]}
    (tmp_path / "2026-12-02.json").write_text(json.dumps(document))

    with pytest.raises(InvalidPolicy, match=r"raised_on_arrival\.0: Value error, match\.priority: 'critical'"):
        load_policy(tmp_path / "2026-12-02.json")
    document["raised_on_arrival"][0]["match"] = {"priority": "major"}
    (tmp_path / "2026-12-02.json").write_text(json.dumps(document))
    with pytest.raises(InvalidPolicy, match="pause_reasons: awaiting_godot not in the catalogue"):
        load_policy(tmp_path / "2026-12-02.json")


def test_a_catalogue_version_that_drops_a_value_is_refused(tmp_path: Path) -> None:
    [newest] = sorted(CATALOG_DIR.glob("*.json"))[-1:]
    document = json.loads(newest.read_text())
    (tmp_path / newest.name).write_text(json.dumps(document))
    document.update(version="2027-01", effective_from="2027-01-01T00:00:00+08:00")
    document["channels"].remove("weibo")
    (tmp_path / "2027-01.json").write_text(json.dumps(document))

    with pytest.raises(InvalidCatalog, match=r"2027-01\.json: drops channels weibo"):
        load_catalogs(tmp_path)
