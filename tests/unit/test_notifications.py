"""The notification policy, its templates, and which complaint events notify the customer by which channel."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio
from eventsourcing.domain import AggregateEvent

from services.complaints.application import ComplaintsApplication, StepNotAllowed, StepRequest
from services.complaints.domain import AlreadyDone, Complaint, CustomerNotifications, Notice, Step, StepRefused
from services.complaints.group_commit import InMemoryBatches
from services.complaints.notifications import (
    PLACEHOLDERS,
    InvalidNotificationPolicy,
    NotificationPolicy,
    QuietHours,
    Retry,
    load_policies,
    load_templates,
    render,
)
from services.complaints.notifier import notifications_of
from services.complaints.personal_data import CustomerData, InMemoryDataKeys
from services.complaints.repositories import InMemorySerialBlocks, InMemoryVerificationAttempts
from shared.clock import CHINA_TIME
from tests.unit.test_complaints_application import (
    ADMIN,
    HALL,
    LIMITS,
    MASTER_KEY,
    SettableClock,
    complaint,
    resolved_on_spot,
)

POLICY_FILE = Path("services/complaints/notifications/2026-12.json")
NIGHT = QuietHours(start=time(21), end=time(8))


def china(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=CHINA_TIME)


@pytest.mark.parametrize(
    ("due", "released"),
    [
        (china(16, 20, 59), None),
        (china(16, 21), china(17, 8)),
        (china(16, 23, 30), china(17, 8)),
        (china(17, 0, 10), china(17, 8)),
        (china(17, 7, 59), china(17, 8)),
        (china(17, 8), None),
    ],
)
def test_quiet_hours_across_midnight_hold_a_message_until_they_end(due: datetime, released: datetime | None) -> None:
    assert NIGHT.release(due) == released
    assert NIGHT.release(due.astimezone(UTC)) == released  # whatever zone the instant is given in


def test_quiet_hours_within_one_day_end_that_day() -> None:
    lunch = QuietHours(start=time(12), end=time(14))

    assert (lunch.release(china(16, 11, 59)), lunch.release(china(16, 13)), lunch.release(china(16, 14))) == (
        None,
        china(16, 14),
        None,
    )


def test_retries_back_off_by_the_factor_up_to_the_cap() -> None:
    retry = Retry(attempts=5, first_delay_seconds=60, factor=4, max_delay_seconds=3600)

    assert [retry.delay_after(made).total_seconds() for made in (1, 2, 3, 4)] == [60, 240, 960, 3600]


def policy_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(POLICY_FILE.read_text())
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = document
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return document


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"triggers__registered__template_version": 9}, "triggers.registered"),
        ({"triggers__closed__template": "result_recorded"}, "survey_url"),  # no survey to link to at closure
        ({"triggers__closed__pause_reasons": ["awaiting_customer"]}, "only paused_for_customer"),
        ({"triggers__paused_for_customer__pause_reasons": ["awaiting_godot"]}, "awaiting_godot"),
        ({"quiet_hours__sms__end": "21:00"}, "same time"),
        ({"triggers__registered__channels": ["fax"]}, "fax"),
    ],
)
def test_a_policy_naming_what_does_not_exist_is_refused_with_the_entry_named(
    changes: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        NotificationPolicy.model_validate(policy_document(**changes))


def test_every_policy_file_loads_and_every_template_renders_with_its_triggers_values() -> None:
    policies = load_policies()

    assert policies and all(policy.version for policy in policies)
    for policy in policies:
        for trigger_name, trigger in policy.triggers.items():
            values = {name: f"<{name}>" for name in PLACEHOLDERS[trigger_name]}
            for text in policy.template_of(trigger).texts():
                render(text, values)  # a placeholder the trigger cannot fill would raise KeyError
    for versions in load_templates().values():
        for template in versions.values():
            assert "{number}" in template.sms


def test_a_policy_file_declaring_another_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "2027-01.json").write_text(POLICY_FILE.read_text())

    with pytest.raises(InvalidNotificationPolicy, match="declares version"):
        load_policies(tmp_path)


@pytest_asyncio.fixture
async def complaints() -> AsyncIterator[ComplaintsApplication]:
    keys = InMemoryDataKeys()
    application = ComplaintsApplication(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"},
        InMemorySerialBlocks(),
        InMemoryVerificationAttempts(LIMITS),
        MASTER_KEY,
        lambda _: keys,
        lambda application: InMemoryBatches(application, keys),
        SettableClock(china(16, 10)),
    )
    application.register_hall(HALL, ADMIN)
    yield application
    application.close()


def stored_events(complaints: ComplaintsApplication) -> list[AggregateEvent]:
    stored = complaints.recorder.select_notifications(start=1, limit=1000)
    return [cast(AggregateEvent, complaints.mapper.to_domain_event(item)) for item in stored]


def customer_of(complaints: ComplaintsApplication) -> Any:
    def customer(event: AggregateEvent) -> CustomerData | None:
        found = complaints.find(Complaint, event.originator_id)
        return None if found is None else complaints.customer_of(found)

    return customer


async def test_triggers_notify_by_each_channel_the_customer_has_an_address_for(
    complaints: ComplaintsApplication,
) -> None:
    with_email, _, _ = await complaints.register_complaint(complaint(customer_email="zs@example.cn"), ADMIN)
    phone_only, _, _ = await complaints.register_complaint(complaint(), ADMIN)
    resolved = resolved_on_spot(complaints, with_email.id, ADMIN)
    act = complaints.act
    act(with_email.id, StepRequest("quality-1", "waits"), lambda c, s: c.pause("awaiting_customer", s), ADMIN)
    act(phone_only.id, StepRequest("quality-1", "waits"), lambda c, s: c.pause("awaiting_third_party", s), ADMIN)

    planned = notifications_of(stored_events(complaints), customer_of(complaints), {"sms", "email", "wechat"})

    assert sorted((n.complaint_id == with_email.id, n.trigger, n.channel, n.occurrence) for n in planned) == [
        (False, "registered", "sms", 1),  # not the pause on a third party: the customer can do nothing about it
        (True, "paused_for_customer", "email", 3),
        (True, "paused_for_customer", "sms", 3),
        (True, "registered", "email", 1),
        (True, "registered", "sms", 1),
        (True, "result_recorded", "email", 2),
        (True, "result_recorded", "sms", 2),
    ]
    assert {n.result_at for n in planned if n.trigger == "result_recorded"} == {resolved.result_at}
    assert all(n.due_at == china(16, 10) for n in planned)  # the service's clock, not the store's timestamp
    assert notifications_of(stored_events(complaints), customer_of(complaints), {"email"}) == [
        n for n in planned if n.channel == "email"
    ]


async def test_an_erased_customer_is_notified_by_no_channel(complaints: ComplaintsApplication) -> None:
    registered, _, _ = await complaints.register_complaint(complaint(), ADMIN)
    complaints.erase_customer(complaints.get_complaint(registered.id, ADMIN), "dpo-1", "the customer asked")

    assert notifications_of(stored_events(complaints), customer_of(complaints), {"sms"}) == []


def notice(key: str = "2:sms", result_at: datetime | None = None, failure: str | None = None) -> Notice:
    return Notice(key, "result_recorded", "sms", "result_recorded", 1, 1, china(16, 11), result_at, failure)


def test_a_notification_is_recorded_once_and_a_sent_result_counts_as_told() -> None:
    record = CustomerNotifications(uuid.uuid4())
    record.record(notice(result_at=china(16, 10)))
    record.record(notice("3:sms", failure="the gateway answered 503"))

    with pytest.raises(AlreadyDone):
        record.record(notice())
    assert record.results_told == {china(16, 10)}
    assert [type(event).__name__ for event in record.collect_events()] == ["Started", "Notified", "Failed"]


async def test_feedback_waits_for_the_customer_to_be_told_where_the_policy_asks(
    complaints: ComplaintsApplication,
) -> None:
    registered, _, _ = await complaints.register_complaint(complaint(), ADMIN)
    checked = complaints.act(
        registered.id,
        StepRequest("quality-1", "heard"),
        lambda c, s: c.check(True, "billing run", "billing_system", "group", s),
        ADMIN,
    )[0]
    assert not checked.told_of_result(None)  # no result yet
    complaints.act(registered.id, StepRequest("quality-1", "called"), lambda c, s: c.contact("reached", s), ADMIN)
    rectified = complaints.act(
        registered.id,
        StepRequest("quality-1", "refund"),
        lambda c, s: c.rectify("refund", "billing", china(20, 18), [], s),
        ADMIN,
    )[0]
    result_at = rectified.result_at
    assert result_at is not None

    assert not rectified.told_of_result(None)  # the contact came before the result
    assert rectified.told_of_result(told_by_notification(rectified.id, result_at))
    assert not rectified.told_of_result(told_by_notification(rectified.id, result_at - timedelta(days=1)))
    with pytest.raises(StepRefused, match="not been told"):
        rectified.feedback(
            "satisfied", "other_unit", Step(actor="quality-1", reason="asked", at=china(16, 12)), customer_told=False
        )
    complaints.act(registered.id, StepRequest("quality-1", "told"), lambda c, s: c.contact("reached", s), ADMIN)
    assert complaints.get_complaint(registered.id, ADMIN).told_of_result(None)


def told_by_notification(complaint_id: uuid.UUID, result_at: datetime) -> CustomerNotifications:
    record = CustomerNotifications(complaint_id)
    record.record(notice(result_at=result_at))
    return record


async def test_the_policy_decides_whether_staff_feedback_waits_for_the_customer_to_be_told(
    complaints: ComplaintsApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = NotificationPolicy.model_validate(policy_document(feedback_requires_customer_told=True))
    monkeypatch.setattr("services.complaints.application.policy_at", lambda _: strict)
    registered, _, _ = await complaints.register_complaint(complaint(), ADMIN)
    complaints.act(
        registered.id,
        StepRequest("quality-1", "heard"),
        lambda c, s: c.check(True, "billing run", "billing_system", "group", s),
        ADMIN,
    )
    complaints.act(registered.id, StepRequest("quality-1", "called"), lambda c, s: c.contact("reached", s), ADMIN)
    rectified, _ = complaints.act(
        registered.id,
        StepRequest("quality-1", "refund"),
        lambda c, s: c.rectify("refund", "billing", china(20, 18), [], s),
        ADMIN,
    )
    assert rectified.result_at is not None

    with pytest.raises(StepNotAllowed, match="not been told"):
        complaints.give_feedback(registered.id, "satisfied", StepRequest("quality-1", "asked"), ADMIN)
    complaints.record_notification(registered.id, notice("4:sms", result_at=rectified.result_at))
    complaints.record_notification(registered.id, notice("4:sms", result_at=rectified.result_at))  # once only
    given, _ = complaints.give_feedback(registered.id, "satisfied", StepRequest("quality-1", "asked"), ADMIN)

    assert given.satisfaction == "satisfied"
    record = complaints.find(CustomerNotifications, CustomerNotifications.create_id(registered.id))
    assert record is not None and record.keys == {"4:sms"}
