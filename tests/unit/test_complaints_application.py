"""The complaints use cases on the in-memory event store and in-memory repositories."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from services.complaints.application import (
    ComplaintsApplication,
    IdempotencyKeyReused,
    NotResponsible,
    PublicComplaintNotFound,
    ReceivedAtOutOfRange,
    RegisterComplaint,
    RegisterHall,
    StepNotAllowed,
    StepRequest,
    SurveyGone,
    TooManyAttempts,
    UnknownHall,
)
from services.complaints.domain import Complaint, ComplaintNumber, Step
from services.complaints.group_commit import InMemoryBatches
from services.complaints.personal_data import CustomerData, InMemoryDataKeys, MasterKey
from services.complaints.repositories import (
    BLOCK_SIZE,
    AttemptLimits,
    InMemorySerialBlocks,
    InMemoryVerificationAttempts,
)
from services.complaints.surveys import SurveyTicket
from shared.auth import Principal, Role
from shared.organisation import OrgUnit

HALL = RegisterHall(hall_code="GD-SZ-001", name="福田营业厅", province="广东", city="深圳", level=2, ownership="own")
ADMIN = Principal("quality-1", OrgUnit(), frozenset({Role.admin}))
GUANGZHOU = Principal("manager-2", OrgUnit(("广东", "广州")), frozenset({Role.hall_manager}))


class SettableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


IN_MEMORY = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
MASTER_KEY = MasterKey(b"unit-tests-personal-data-key-of-32-bytes")
LIMITS = AttemptLimits()
CUSTOMER, STRANGER = "digest-of-the-customer's-address", "digest-of-a-stranger's-address"


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(datetime(2026, 3, 9, 2, 30, tzinfo=UTC))  # 10:30 China time


@pytest_asyncio.fixture
async def complaints(clock: SettableClock) -> AsyncIterator[ComplaintsApplication]:
    keys = InMemoryDataKeys()
    application = ComplaintsApplication(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"},
        InMemorySerialBlocks(),
        InMemoryVerificationAttempts(LIMITS),
        MASTER_KEY,
        lambda _: keys,
        lambda application: InMemoryBatches(application, keys),
        clock,
    )
    application.register_hall(HALL, ADMIN)
    yield application
    application.close()


def complaint(**changes: object) -> RegisterComplaint:
    command = RegisterComplaint(
        hall_code=HALL.hall_code,
        channel="hall_counter",
        category="billing",
        priority="normal",
        customer_name="张三",
        customer_phone="13812345678",
        description="charged twice",
        received_by="clerk-17",
    )
    return replace(command, **changes)  # type: ignore[arg-type]


def serial_of(number: str) -> int:
    return int(number.split("-")[1])  # C<day>-<serial>-<random>


async def test_a_complaint_is_numbered_by_its_china_time_day_and_found_by_its_number(
    complaints: ComplaintsApplication, clock: SettableClock
) -> None:
    clock.now = datetime(2026, 3, 9, 17, tzinfo=UTC)  # already 10 March in China

    registered, created, _ = await complaints.register_complaint(complaint(), ADMIN)

    assert created
    assert registered.number.startswith("C20260310-")
    assert re.fullmatch(r"C20260310-\d{6}-[0-9A-HJKMNP-TV-Z]{5}", registered.number)
    found, steps = await complaints.public_progress(registered.number, "5678", CUSTOMER)
    assert found.id == registered.id
    assert [step for step, _ in steps] == ["Registered"]


async def test_a_number_given_before_numbers_were_kept_with_keys_still_finds_its_complaint(
    complaints: ComplaintsApplication,
) -> None:
    registered, _, _ = await complaints.register_complaint(complaint(), ADMIN)
    complaints.save(ComplaintNumber.given("C20260101-000042", registered.id))  # as releases before made them

    found, _ = await complaints.public_progress("C20260101-000042", "5678", CUSTOMER)
    erasable = complaints.complaints_of(["C20260101-000042"], [], [], ADMIN)

    assert found.id == registered.id
    assert [complaint.id for complaint in erasable] == [registered.id]


async def test_numbers_run_on_from_block_to_block_without_repeating(complaints: ComplaintsApplication) -> None:
    numbers = [(await complaints.register_complaint(complaint(), ADMIN))[0].number for _ in range(BLOCK_SIZE + 2)]

    assert len(set(numbers)) == len(numbers)
    assert [serial_of(number) for number in numbers] == list(range(1, BLOCK_SIZE + 3))


async def test_concurrent_registrations_are_saved_together_and_each_gets_its_own_number(
    complaints: ComplaintsApplication,
) -> None:
    registered = await asyncio.gather(*(complaints.register_complaint(complaint(), ADMIN) for _ in range(20)))

    assert len({found.number for found, _, _ in registered}) == 20
    for found, created, _ in registered:
        assert created
        assert complaints.get_complaint(found.id, ADMIN).number == found.number


async def test_a_retry_with_the_same_key_returns_the_first_complaint(complaints: ComplaintsApplication) -> None:
    first, _, _ = await complaints.register_complaint(complaint(), ADMIN, idempotency_key="k-1")

    again, created, _ = await complaints.register_complaint(complaint(), ADMIN, idempotency_key="k-1")

    assert not created
    assert (again.id, again.number) == (first.id, first.number)


async def test_the_same_key_with_another_complaint_is_refused(complaints: ComplaintsApplication) -> None:
    await complaints.register_complaint(complaint(), ADMIN, idempotency_key="k-1")

    with pytest.raises(IdempotencyKeyReused):
        await complaints.register_complaint(complaint(description="another"), ADMIN, idempotency_key="k-1")


@pytest.mark.parametrize(
    "received",
    [timedelta(minutes=1), -timedelta(days=31)],
    ids=["in-the-future", "more-than-30-days-ago"],
)
async def test_a_complaint_received_outside_the_accepted_window_is_refused(
    complaints: ComplaintsApplication, clock: SettableClock, received: timedelta
) -> None:
    with pytest.raises(ReceivedAtOutOfRange):
        await complaints.register_complaint(complaint(received_at=clock.now + received), ADMIN)


@pytest.mark.parametrize("viewer", [ADMIN, GUANGZHOU], ids=["unregistered-hall", "hall-outside-the-unit"])
async def test_a_complaint_at_a_hall_the_caller_cannot_see_is_refused_as_unknown(
    complaints: ComplaintsApplication, viewer: Principal
) -> None:
    hall_code = "GD-SZ-404" if viewer is ADMIN else HALL.hall_code

    with pytest.raises(UnknownHall):
        await complaints.register_complaint(complaint(hall_code=hall_code), viewer)


async def test_wrong_digits_and_an_unknown_number_get_the_same_answer(complaints: ComplaintsApplication) -> None:
    registered, _, _ = await complaints.register_complaint(complaint(), ADMIN)

    with pytest.raises(PublicComplaintNotFound):
        await complaints.public_progress(registered.number, "0000", STRANGER)
    with pytest.raises(PublicComplaintNotFound):
        await complaints.public_progress("C20260309-999999-ABCDE", "5678", STRANGER)


async def test_a_strangers_guesses_lock_out_the_stranger_and_never_the_customer(
    complaints: ComplaintsApplication, clock: SettableClock
) -> None:
    registered, _, _ = await complaints.register_complaint(complaint(), ADMIN)
    guesses = await asyncio.gather(
        *(complaints.public_progress(registered.number, f"{n:04}", STRANGER) for n in range(15)),
        return_exceptions=True,
    )
    # Judged one at a time: five wrong guesses counted, the other ten refused without being tried.
    assert sum(isinstance(g, PublicComplaintNotFound) for g in guesses) == LIMITS.per_client
    assert sum(isinstance(g, TooManyAttempts) for g in guesses) == 15 - LIMITS.per_client

    found, _ = await complaints.public_progress(registered.number, "5678", CUSTOMER)
    assert found.id == registered.id
    with pytest.raises(TooManyAttempts) as refused:
        await complaints.public_progress(registered.number, "5678", STRANGER)
    assert refused.value.headers["Retry-After"] == str(int(LIMITS.window.total_seconds()) + 1)

    clock.now += LIMITS.window
    found, _ = await complaints.public_progress(registered.number, "5678", STRANGER)
    assert found.id == registered.id


async def test_past_the_global_budget_only_clients_without_a_failure_may_try(
    clock: SettableClock,
) -> None:
    attempts = InMemoryVerificationAttempts(AttemptLimits(per_client=5, global_budget=3))
    keys = InMemoryDataKeys()
    complaints = ComplaintsApplication(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"},
        InMemorySerialBlocks(),
        attempts,
        MASTER_KEY,
        lambda _: keys,
        lambda application: InMemoryBatches(application, keys),
        clock,
    )
    try:
        complaints.register_hall(HALL, ADMIN)
        registered, _, _ = await complaints.register_complaint(complaint(), ADMIN)
        for client in ("bot-1", "bot-2", "bot-3"):
            with pytest.raises(PublicComplaintNotFound):
                await complaints.public_progress(registered.number, "0000", client)
        with pytest.raises(TooManyAttempts):
            await complaints.public_progress(registered.number, "5678", "bot-1")
        found, _ = await complaints.public_progress(registered.number, "5678", CUSTOMER)
        assert found.id == registered.id
    finally:
        complaints.close()


async def test_a_unit_above_the_hall_reviews_its_check_and_the_hall_cannot_rule_again(
    complaints: ComplaintsApplication,
) -> None:
    hall = OrgUnit(("广东", "深圳", HALL.hall_code))
    manager = Principal("manager-1", hall, frozenset({Role.hall_manager}))
    city_quality = Principal("quality-sz", OrgUnit(("广东", "深圳")), frozenset({Role.quality_manager}))
    registered, _, _ = await complaints.register_complaint(complaint(), manager)

    def check(substantiated: bool) -> Callable[[Complaint, Step], None]:
        return lambda c, step: c.check(substantiated, "counter refused a refund", "hall_service", HALL.hall_code, step)

    def review(viewer: Principal, substantiated: bool = True) -> tuple[Complaint, bool]:
        return complaints.review_check(
            registered.id, substantiated, StepRequest(viewer.subject, "recording heard"), viewer
        )

    with pytest.raises(StepNotAllowed, match="not been checked"):
        review(city_quality)
    complaints.act(registered.id, StepRequest("manager-1", "no fault found"), check(False), manager)
    with pytest.raises(NotResponsible, match="only a unit above"):
        review(manager)  # the hall itself

    reviewed, changed = review(city_quality)

    assert changed and (reviewed.substantiated, reviewed.check_reviewed_by) == (True, "group/广东/深圳")
    with pytest.raises(StepNotAllowed, match="reviewed the check"):
        complaints.act(registered.id, StepRequest("manager-1", "again"), check(False), manager)
    overruled, _ = review(ADMIN, substantiated=False)  # the group may review the city's review
    assert (overruled.substantiated, overruled.check_reviewed_by) == (False, "group")


def resolved_on_spot(complaints: ComplaintsApplication, complaint_id: uuid.UUID, viewer: Principal) -> Complaint:
    resolved, _ = complaints.act(complaint_id, StepRequest(viewer.subject, "fixed"), Complaint.resolve_on_spot, viewer)
    return resolved


async def test_staff_feedback_says_whether_the_graded_hall_gave_it(complaints: ComplaintsApplication) -> None:
    manager = Principal("manager-1", OrgUnit(("广东", "深圳", HALL.hall_code)), frozenset({Role.hall_manager}))
    callback_team = Principal("callback-sz", OrgUnit(("广东", "深圳")), frozenset({Role.quality_manager}))
    for viewer, source in ((manager, "graded_hall"), (callback_team, "other_unit")):
        registered, _, _ = await complaints.register_complaint(complaint(), ADMIN)
        resolved_on_spot(complaints, registered.id, ADMIN)
        complaints.give_feedback(registered.id, "satisfied", StepRequest(viewer.subject, "asked"), viewer)
        [feedback] = [
            e for e in complaints.repository.event_store.get(registered.id) if type(e).__name__ == "FeedbackReceived"
        ]
        assert feedback.source == source  # type: ignore[attr-defined]


async def test_a_survey_is_answered_once_before_it_expires_and_only_about_the_latest_result(
    complaints: ComplaintsApplication, clock: SettableClock
) -> None:
    manager = Principal("manager-1", OrgUnit(("广东", "深圳", HALL.hall_code)), frozenset({Role.hall_manager}))
    registered, _, _ = await complaints.register_complaint(complaint(), manager)
    resolved = resolved_on_spot(complaints, registered.id, manager)
    assert resolved.result_at is not None
    ticket = SurveyTicket.for_result(registered.id, resolved.result_at)
    complaints.give_feedback(registered.id, "satisfied", StepRequest("manager-1", "asked"), manager)  # the hall's own

    answered = complaints.answer_survey(ticket, "unsatisfied")

    assert answered.satisfaction == "unsatisfied" and answered.surveyed_result_at == resolved.result_at
    with pytest.raises(StepNotAllowed, match="already answered"):
        complaints.answer_survey(ticket, "satisfied")
    complaints.act(registered.id, StepRequest("manager-1", "customer unhappy"), Complaint.reopen, manager)
    complaints.act(
        registered.id, StepRequest("manager-1", "called"), lambda c, step: c.callback("reached", step), manager
    )
    clock.now += timedelta(hours=1)
    resolved_again = resolved_on_spot(complaints, registered.id, manager)
    with pytest.raises(SurveyGone, match="newer result"):
        complaints.answer_survey(ticket, "satisfied")
    assert resolved_again.result_at is not None
    clock.now += timedelta(days=8)
    with pytest.raises(SurveyGone, match="expired"):
        complaints.answer_survey(SurveyTicket.for_result(registered.id, resolved_again.result_at), "satisfied")


async def test_only_a_unit_above_the_hall_approves_a_pause_and_only_while_it_lasts(
    complaints: ComplaintsApplication,
) -> None:
    manager = Principal("manager-1", OrgUnit(("广东", "深圳", HALL.hall_code)), frozenset({Role.hall_manager}))
    city_quality = Principal("quality-sz", OrgUnit(("广东", "深圳")), frozenset({Role.quality_manager}))
    registered, _, _ = await complaints.register_complaint(complaint(), manager)

    def approve(viewer: Principal) -> tuple[Complaint, bool]:
        return complaints.approve_pause(registered.id, StepRequest(viewer.subject, "customer abroad"), viewer)

    with pytest.raises(StepNotAllowed, match="no pause to approve"):
        approve(city_quality)
    complaints.act(
        registered.id,
        StepRequest("manager-1", "waiting on the customer"),
        lambda complaint, step: complaint.pause("awaiting_customer", step),
        manager,
    )
    with pytest.raises(NotResponsible, match="only a unit above"):
        approve(manager)

    _, changed = approve(city_quality)

    assert changed
    kinds = [type(e).__name__ for e in complaints.repository.event_store.get(registered.id)]
    assert kinds[-2:] == ["Paused", "PauseApproved"]


async def test_a_complaint_takes_no_step_past_the_most_events_it_may_hold(clock: SettableClock) -> None:
    keys = InMemoryDataKeys()
    complaints = ComplaintsApplication(
        IN_MEMORY,
        InMemorySerialBlocks(),
        InMemoryVerificationAttempts(),
        MASTER_KEY,
        lambda _: keys,
        lambda application: InMemoryBatches(application, keys),
        clock,
        12,
    )
    try:
        complaints.register_hall(HALL, ADMIN)
        registered, _, _ = await complaints.register_complaint(complaint(), ADMIN)

        def check(c: Complaint, step: Step) -> None:
            c.check(False, "counter refused a refund", "hall_service", HALL.hall_code, step)

        for _ in range(11):  # the registration and eleven checks: twelve events
            complaints.act(registered.id, StepRequest("admin", "checked again"), check, ADMIN)
        with pytest.raises(StepNotAllowed, match="holds 12 events"):
            complaints.act(registered.id, StepRequest("admin", "once more"), check, ADMIN)
    finally:
        complaints.close()


async def test_a_customers_data_is_sealed_in_the_events_and_unreadable_once_erased(
    complaints: ComplaintsApplication, clock: SettableClock
) -> None:
    typed = "张三 says 13812345678 was charged twice; ID 110101199003077777"
    registered, _, _ = await complaints.register_complaint(complaint(description=typed), ADMIN)
    again, _, _ = await complaints.register_complaint(complaint(), ADMIN)
    [stored] = [e for e in complaints.repository.event_store.get(registered.id) if isinstance(e, Complaint.Registered)]

    assert "13812345678" not in repr(stored.__dict__) and "张三" not in repr(stored.__dict__)
    assert registered.description == "张* says 138******** was charged twice; ID 110***************"
    assert complaints.customer_of(registered) == CustomerData("张三", "13812345678", typed)

    [first, second] = sorted([registered, again], key=lambda c: c.id)
    found = complaints.complaints_of([], ["13812345678"], [], ADMIN)
    assert [c.id for c in found] == [first.id, second.id]  # both of this customer's complaints
    assert complaints.complaints_of([], ["13812345678"], [], GUANGZHOU) == []  # outside Guangzhou's scope

    assert complaints.erase_customer(found[0], "admin-1", "PIPL art. 47 request")
    assert not complaints.erase_customer(complaints.get_complaint(found[0].id, ADMIN), "admin-1", "again")
    erased = complaints.get_complaint(found[0].id, ADMIN)
    assert erased.customer_erased and complaints.customer_of(erased) is None
    assert complaints.customer_of(complaints.get_complaint(found[1].id, ADMIN)) is not None  # its own key
    with pytest.raises(PublicComplaintNotFound):
        await complaints.public_progress(erased.number, "5678", CUSTOMER)


async def test_customer_data_is_erased_once_the_retention_after_closure_is_over(
    complaints: ComplaintsApplication, clock: SettableClock
) -> None:
    registered, _, _ = await complaints.register_complaint(complaint(), ADMIN)
    resolved_on_spot(complaints, registered.id, ADMIN)
    complaints.give_feedback(registered.id, "satisfied", StepRequest("qm", "asked"), ADMIN)
    complaints.act(registered.id, StepRequest("qm", "done"), Complaint.close, ADMIN)
    retention = timedelta(days=30)

    clock.now += retention - timedelta(minutes=1)
    assert complaints.erase_after_retention(retention) == 0
    clock.now += timedelta(minutes=2)
    assert complaints.erase_after_retention(retention) == 1
    erased = complaints.get_complaint(registered.id, ADMIN)
    assert complaints.customer_of(erased) is None
    assert [type(e).__name__ for e in complaints.repository.event_store.get(erased.id)][-1] == "CustomerErased"


async def test_a_complaint_counts_the_same_phones_earlier_ones_within_the_window_and_lists_those_the_viewer_sees(
    complaints: ComplaintsApplication, clock: SettableClock
) -> None:
    guangzhou_hall = RegisterHall(
        hall_code="GD-GZ-001", name="天河营业厅", province="广东", city="广州", level=2, ownership="own"
    )
    complaints.register_hall(guangzhou_hall, ADMIN)
    start = clock.now
    first, _, _ = await complaints.register_complaint(complaint(hall_code=guangzhou_hall.hall_code), ADMIN)
    clock.now = start + timedelta(days=29)
    second, _, _ = await complaints.register_complaint(complaint(), ADMIN)
    other_phone, _, _ = await complaints.register_complaint(complaint(customer_phone="13900001111"), ADMIN)
    clock.now += timedelta(hours=1)
    third, _, third_repeats = await complaints.register_complaint(complaint(), ADMIN)
    clock.now = start + timedelta(days=31)
    past_the_first, _, _ = await complaints.register_complaint(complaint(), ADMIN)
    shenzhen = Principal("manager-1", OrgUnit(("广东", "深圳")), frozenset({Role.hall_manager}))

    counts = [c.repeat_count for c in (first, second, other_phone, third, past_the_first)]
    assert counts == [0, 1, 0, 2, 2]  # the last: the first is more than 30 days before it
    assert complaints.repeated(third, ADMIN) == third_repeats == [first.number, second.number]
    assert complaints.repeated(third, shenzhen) == [second.number]
    assert complaints.repeated(past_the_first, ADMIN) == [second.number, third.number]
    assert [c.id for c in complaints.related(first, ADMIN)] == [second.id, third.id, past_the_first.id]
    complaints.data_keys.destroy([first.id], clock.now)  # the customer erased: the digest goes with the key
    assert complaints.related(first, ADMIN) == []
