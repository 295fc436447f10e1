from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from services.complaints.application import RegisterComplaint
from services.complaints.domain import Complaint, Hall, Step, StepRefused, hall_aggregate_id
from services.complaints.numbers import NUMBER_PATTERN, RANDOM_ALPHABET, RANDOM_LENGTH, complaint_number
from services.complaints.personal_data import MasterKey, legacy_sealed
from services.complaints.schemas import mask_name, mask_phone


def register(received_by: str = "clerk-17") -> Complaint:
    now = datetime(2026, 9, 30, 2, tzinfo=UTC)
    return Complaint(
        id=uuid.uuid4(),
        number="C20260930-000001",
        hall_code="GD-SZ-001",
        channel="hall_counter",
        category="billing",
        priority="normal",
        customer_sealed=legacy_sealed("张三", "13812345678"),
        description="charged twice",
        received_by=received_by,
        received_at=now,
        registered_at=now,
        request_fingerprint="f",
    )


def test_whoever_receives_a_complaint_owns_it_first() -> None:
    complaint = register(received_by="clerk-17")

    assert complaint.owner == "clerk-17"
    assert complaint.status == "open"
    [registered] = complaint.collect_events()
    assert isinstance(registered, Complaint.Registered)


def test_a_hall_is_addressed_by_its_code() -> None:
    hall = Hall(hall_code="GD-SZ-001", name="福田", province="广东", city="深圳", level=1, ownership="self_operated")

    assert hall.id == hall_aggregate_id("GD-SZ-001") != hall_aggregate_id("GD-SZ-002")


def test_same_request_content_has_same_fingerprint() -> None:
    request = RegisterComplaint("H", "app", "billing", "normal", "张三", "13812345678", "text", "clerk-17")
    changed = RegisterComplaint("H", "app", "billing", "urgent", "张三", "13812345678", "text", "clerk-17")

    other_phone = RegisterComplaint("H", "app", "billing", "normal", "张三", "13812345679", "text", "clerk-17")
    key = MasterKey(b"unit-tests-personal-data-key-of-32-bytes")

    assert request.fingerprint(key) == RegisterComplaint(**request.__dict__).fingerprint(key)
    assert request.fingerprint(key) != changed.fingerprint(key)
    assert request.fingerprint(key) != other_phone.fingerprint(key)
    # Keyed: the same request under another master key does not give the same fingerprint.
    assert request.fingerprint(key) != request.fingerprint(MasterKey(b"another-personal-data-key-of-32-bytes"))


def test_a_fingerprint_stays_what_earlier_releases_stored() -> None:
    # Stored in events: a retry after an upgrade must match the fingerprint of its first request.
    request = RegisterComplaint(
        "H",
        "app",
        "billing",
        "normal",
        "张三",
        "13812345678",
        "text",
        "clerk-17",
        received_at=datetime(2026, 9, 30, 2, tzinfo=UTC),
        customer_email="a@b.cn",
    )

    fingerprint = request.fingerprint(MasterKey(b"unit-tests-personal-data-key-of-32-bytes"))

    assert fingerprint == "e2030f24ea9ccb36c1090bc8b2543ea3618e60e351d193bdf4973791034c640d"


def test_phone_keeps_only_prefix_and_last_four_digits() -> None:
    assert mask_phone("13812345678") == "138********"  # never the last four: they verify the customer
    assert mask_phone("12345678") == "123*****"
    assert mask_phone("12345") == "*****"


def test_name_keeps_only_the_family_name() -> None:
    assert mask_name("张三丰") == "张**"


def step(actor: str = "handler-1") -> Step:
    return Step(actor=actor, reason="test", at=datetime(2026, 10, 8, 2, tzinfo=UTC))


def refusal(action: Callable[[], None]) -> str:
    with pytest.raises(StepRefused) as refused:
        action()
    return str(refused.value)


def test_closing_needs_feedback_and_feedback_needs_rectification() -> None:
    complaint = register()

    assert refusal(lambda: complaint.close(step())) == "feedback from the customer is missing"
    assert "rectify" in refusal(lambda: complaint.feedback("satisfied", "other_unit", step()))


REGISTERING_HALL = "group/广东/深圳/GD-SZ-001"
CITY_CENTRE = "group/广东/深圳"


def test_a_hand_off_keeps_the_first_owner_until_accepted() -> None:
    complaint = register(received_by="clerk-17")
    complaint.dispatch(CITY_CENTRE, REGISTERING_HALL, step())

    assert complaint.owner == "clerk-17" and complaint.owner_unit is None
    assert complaint.pending_hand_off_to == CITY_CENTRE
    complaint.accept(step("csc-agent"))
    assert complaint.owner == complaint.owner_unit == CITY_CENTRE and complaint.pending_hand_off_to is None


def test_a_complaint_is_not_handed_to_the_unit_that_owns_it() -> None:
    complaint = register()

    assert refusal(lambda: complaint.dispatch(REGISTERING_HALL, REGISTERING_HALL, step())) == (
        f"{REGISTERING_HALL} already owns the complaint"
    )


def unsatisfied_and_reopened(resolve: Callable[[Complaint], None]) -> Complaint:
    complaint = register()
    resolve(complaint)
    complaint.feedback("unsatisfied", "other_unit", step())
    complaint.reopen(step())
    return complaint


@pytest.mark.parametrize(
    ("first_resolution", "name"),
    [
        (lambda c: c.resolve_on_spot(step()), "on the spot"),
        (
            lambda c: (
                c.check(True, "billing error", "billing_system", "group", step()),
                c.contact("reached", step()),
                c.rectify("refund", "billing", datetime(2026, 10, 9, tzinfo=UTC), [], step()),
            ),
            "rectified",
        ),
    ],
)
def test_while_a_callback_is_owed_no_step_can_end_the_loop(
    first_resolution: Callable[[Complaint], None], name: str
) -> None:
    complaint = unsatisfied_and_reopened(first_resolution)

    for attempt in (
        lambda: complaint.resolve_on_spot(step()),
        lambda: complaint.rectify("again", "billing", datetime(2026, 10, 9, tzinfo=UTC), [], step()),
        lambda: complaint.feedback("satisfied", "other_unit", step()),
        lambda: complaint.close(step()),
    ):
        assert "supervisor callback" in refusal(attempt), name
    assert complaint.callback_needed and complaint.status == "open"

    complaint.callback("apologised", step("supervisor"))
    complaint.resolve_on_spot(step())
    complaint.feedback("satisfied", "other_unit", step())
    complaint.close(step())
    assert complaint.status == "closed" and not complaint.callback_needed


def test_unsatisfied_feedback_requires_reopen_and_callback() -> None:
    complaint = register()
    complaint.check(True, "billing error", "billing_system", "group", step())
    complaint.contact("reached", step())
    complaint.rectify("refund", "billing", datetime(2026, 10, 9, tzinfo=UTC), [], step())
    complaint.feedback("unsatisfied", "other_unit", step())

    assert "reopen" in refusal(lambda: complaint.close(step()))
    complaint.reopen(step())
    assert "callback" in refusal(
        lambda: complaint.rectify("again", "billing", datetime(2026, 10, 9, tzinfo=UTC), [], step())
    )
    complaint.callback("apologised", step("supervisor"))
    complaint.rectify("refund plus credit", "billing", datetime(2026, 10, 9, tzinfo=UTC), [], step())
    complaint.feedback("satisfied", "other_unit", step())
    complaint.close(step())
    assert complaint.status == "closed" and complaint.reopen_count == 1


def test_nothing_but_reopen_acts_on_a_closed_complaint() -> None:
    complaint = register()
    complaint.resolve_on_spot(step())
    complaint.feedback("satisfied", "other_unit", step())
    complaint.close(step())

    assert refusal(lambda: complaint.pause("awaiting_customer", step())) == "the complaint is closed; reopen it first"
    complaint.reopen(step())
    assert complaint.status == "open"


def test_replaying_the_events_rebuilds_the_same_complaint() -> None:
    complaint = register()
    complaint.dispatch(CITY_CENTRE, REGISTERING_HALL, Step("a", "r", datetime(2026, 10, 8, tzinfo=UTC), "key-1", "fp"))
    complaint.accept(step())
    complaint.pause("awaiting_customer", step())

    rebuilt = None
    for domain_event in complaint.collect_events():
        rebuilt = domain_event.mutate(rebuilt)

    assert rebuilt is not None
    assert vars(rebuilt) == vars(complaint)
    assert rebuilt.response_to("key-1") == ("fp", 2)


def test_the_random_part_of_a_number_draws_every_letter_at_every_place() -> None:
    now = datetime(2026, 12, 1, 2, tzinfo=UTC)
    parts = [complaint_number(now, 7).rsplit("-", 1)[1] for _ in range(2000)]
    assert all(re.fullmatch(NUMBER_PATTERN, f"C20261201-000007-{part}") for part in parts)
    # 2,000 draws miss a given letter at a given place with odds of about e^-62: none should be missing.
    assert [set(letters) for letters in zip(*parts, strict=True)] == [set(RANDOM_ALPHABET)] * RANDOM_LENGTH
