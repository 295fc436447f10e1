"""Mass incidents on the in-memory event store: linking children, bulk steps answered per child, retries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from services.complaints.application import ComplaintsApplication, IdempotencyKeyReused, RegisterHall, StepRequest
from services.complaints.domain import Complaint
from services.complaints.group_commit import InMemoryBatches
from services.complaints.incidents import ChildAnswer, ChildStep, Incident, Incidents, OpenIncident
from services.complaints.outbox import to_contract
from services.complaints.personal_data import InMemoryDataKeys
from services.complaints.repositories import InMemorySerialBlocks, InMemoryVerificationAttempts
from shared.auth import Principal, Role
from shared.contracts import ComplaintAcknowledgedV2
from shared.organisation import OrgUnit
from tests.unit.test_complaints_application import (
    ADMIN,
    HALL,
    IN_MEMORY,
    MASTER_KEY,
    SettableClock,
    complaint,
)

CITY = OrgUnit(("广东", "深圳"))
GUANGZHOU_HALL = RegisterHall(
    hall_code="GD-GZ-001", name="天河营业厅", province="广东", city="广州", level=2, ownership="own"
)
CITY_HANDLER = Principal("handler-sz", CITY, frozenset({Role.handler}))


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(datetime(2026, 3, 9, 2, 30, tzinfo=UTC))


@pytest_asyncio.fixture
async def complaints(clock: SettableClock) -> AsyncIterator[ComplaintsApplication]:
    keys = InMemoryDataKeys()
    application = ComplaintsApplication(
        IN_MEMORY,
        InMemorySerialBlocks(),
        InMemoryVerificationAttempts(),
        MASTER_KEY,
        lambda _: keys,
        lambda application: InMemoryBatches(application, keys),
        clock,
    )
    application.register_hall(HALL, ADMIN)
    application.register_hall(GUANGZHOU_HALL, ADMIN)
    yield application
    application.close()


def request(reason: str = "fibre cut", key: str | None = None, fingerprint: str = "body") -> StepRequest:
    return StepRequest(CITY_HANDLER.subject, reason, idempotency_key=key, fingerprint=fingerprint)


def outage(incidents: Incidents, clock: SettableClock) -> Incident:
    opening = OpenIncident("fibre cut", CITY, "network_quality", clock.now - timedelta(hours=2), clock.now)
    incident, created = incidents.open(opening, request(), CITY_HANDLER)
    assert created
    return incident


def outcomes(answers: list[ChildAnswer]) -> dict[str, str]:
    return {answer.complaint_id: answer.outcome for answer in answers}


async def registered(complaints: ComplaintsApplication, count: int, hall: str = HALL.hall_code) -> list[uuid.UUID]:
    return [(await complaints.register_complaint(complaint(hall_code=hall), ADMIN))[0].id for _ in range(count)]


async def test_children_are_linked_once_each_and_only_from_the_incidents_area(
    complaints: ComplaintsApplication, clock: SettableClock
) -> None:
    incidents = Incidents(complaints)
    incident = outage(incidents, clock)
    mine = await registered(complaints, 2)
    [elsewhere] = await registered(complaints, 1, GUANGZHOU_HALL.hall_code)

    _, answers = incidents.change_children(incident.id, [*mine, elsewhere, uuid.uuid4()], [], request(), ADMIN)
    _, again = incidents.change_children(incident.id, mine, [], request(), ADMIN)

    assert [answer.outcome for answer in answers] == ["done", "done", "refused", "refused"]
    assert "outside the incident's area group/广东/深圳" in (answers[2].reason or "")
    assert set(outcomes(again).values()) == {"unchanged"}
    assert list(incidents.get(incident.id, ADMIN).children) == [str(child) for child in mine]
    other = outage(incidents, clock)
    _, taken = incidents.change_children(other.id, mine[:1], [], request(), ADMIN)
    assert taken[0].outcome == "refused" and f"already a child of incident {incident.id}" in (taken[0].reason or "")
    incidents.change_children(incident.id, [], mine[:1], request(), ADMIN)
    _, moved = incidents.change_children(other.id, mine[:1], [], request(), ADMIN)
    assert moved[0].outcome == "done"


async def test_a_bulk_acknowledge_is_each_childs_own_event_a_closed_one_is_refused_and_a_retry_adds_nothing(
    complaints: ComplaintsApplication, clock: SettableClock
) -> None:
    incidents = Incidents(complaints)
    incident = outage(incidents, clock)
    children = await registered(complaints, 4)
    closed = children[0]
    for perform in (Complaint.resolve_on_spot, lambda c, s: c.feedback("satisfied", "other_unit", s), Complaint.close):
        complaints.act(closed, request(), perform, ADMIN)
    incidents.change_children(incident.id, children, [], request(), ADMIN)

    def acknowledge(_incident: Incident) -> ChildStep:
        return Complaint.acknowledge

    _, answers, taken = incidents.act(incident.id, "acknowledge", acknowledge, request(key="k1"), CITY_HANDLER)
    versions = {child: complaints.get_complaint(child, ADMIN).version for child in children}
    _, replayed, taken_again = incidents.act(incident.id, "acknowledge", acknowledge, request(key="k1"), CITY_HANDLER)

    assert taken and not taken_again and replayed == answers
    assert outcomes(answers) == {str(closed): "refused", **{str(child): "done" for child in children[1:]}}
    assert answers[0].reason == "the complaint is closed; reopen it first"
    assert {child: complaints.get_complaint(child, ADMIN).version for child in children} == versions
    [acknowledged] = [
        event for event in complaints.repository.event_store.get(children[1]) if type(event).__name__ == "Acknowledged"
    ]
    published = await to_contract(acknowledged, complaints.hall_referred_to)
    assert isinstance(published, ComplaintAcknowledgedV2) and published.incident_id == incident.id
    with pytest.raises(IdempotencyKeyReused):
        incidents.act(incident.id, "acknowledge", acknowledge, request(key="k1", fingerprint="other"), CITY_HANDLER)
    _, without_key, _ = incidents.act(incident.id, "acknowledge", acknowledge, request(), CITY_HANDLER)
    assert set(outcomes(without_key).values()) == {"refused"}  # each already had its first response
