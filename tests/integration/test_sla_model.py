"""The SLA model end to end: a major complaint escalated on arrival, reclassification, pause reasons."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.auth import Role
from shared.organisation import OrgUnit
from shared.topics import ESCALATION_EVENTS
from tests.integration.harness import StackClient, bearer, complaint_body, eventually, staff_token
from tests.integration.test_escalation import clock_named, instant, next_working_morning
from tests.integration.test_queues import ids, queue

CITY = OrgUnit(("广东", "深圳"))


async def register(client: StackClient, hall_id: str, **fields: Any) -> str:
    response = await client.post_complaint({**complaint_body(hall_id), **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_major_complaint_is_escalated_to_its_city_at_registration_and_queued_there_as_escalated_not_overdue(
    client: StackClient,
) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start)
    hall_id = await client.register_hall()
    complaint_id = await register(client, hall_id, priority="major", received_at=start.isoformat())
    city = bearer(staff_token("quality-sz", CITY, Role.quality_manager))

    async def queued() -> bool:
        return complaint_id in ids(await queue(client, "escalated_to", city))

    assert await eventually(queued)
    escalations = [
        record["data"]
        for record in await client.records_on(ESCALATION_EVENTS)
        if record["event_type"] == "SlaEscalated" and record["data"]["subject_id"] == complaint_id
    ]
    assert [(e["level"], e["target_unit"], e["raised_by"]) for e in escalations] == [(2, str(CITY), "classification")]
    assert instant(escalations[0]["due_at"]) == start
    item = next(i for i in (await queue(client, "escalated_to", city))["items"] if i["id"] == complaint_id)
    assert item["escalation"] == {"level": 2, "target_unit": str(CITY)} and not item["overdue"]
    assert complaint_id not in ids(await queue(client, "overdue", city))


async def test_reclassifying_normal_to_urgent_an_hour_after_receipt_sets_the_response_deadline_two_hours_after_it(
    client: StackClient,
) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start + timedelta(hours=1))
    hall_id = await client.register_hall()
    complaint_id = await register(client, hall_id, received_at=start.isoformat())
    assert clock_named(await client.clocks(complaint_id), "first_response")["limit"] == {
        "working_days": 1,
        "working_hours": None,
    }

    response = await client.step(complaint_id, "reclassify", {"priority": "urgent"})

    assert response.status_code == 200, response.text
    assert response.json()["priority"] == "urgent"

    async def moved() -> bool:
        response = clock_named(await client.clocks(complaint_id), "first_response")
        return response["deadline"] is not None and instant(response["deadline"]) == start + timedelta(hours=2)

    assert await eventually(moved)
    again = await client.step(complaint_id, "reclassify", {"priority": "urgent"})
    assert again.status_code == 409 and "nothing to change" in again.text
    timeline = await client.wait_for_timeline(complaint_id, 2)
    [change] = [event for event in timeline if event["type"] == "ComplaintReclassified"]
    assert (change["details"]["previous_priority"], change["details"]["priority"]) == ("normal", "urgent")


async def test_only_a_unit_above_the_hall_lowers_a_priority_and_unknown_values_name_their_field(
    client: StackClient,
) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start)
    hall_id = await client.register_hall()
    complaint_id = await register(client, hall_id, priority="urgent", received_at=start.isoformat())
    manager = bearer(staff_token("manager", OrgUnit((*CITY.path, hall_id)), Role.hall_manager))
    city = bearer(staff_token("quality-sz", CITY, Role.quality_manager))

    lowered_by_hall = await client.step(complaint_id, "reclassify", {"priority": "normal"}, headers=manager)
    unknown = await client.step(complaint_id, "reclassify", {"priority": "critical"})
    empty = await client.step(complaint_id, "reclassify", {})
    bad_reason = await client.step(complaint_id, "pause", {"reason_code": "awaiting_godot"})

    assert lowered_by_hall.status_code == 403, lowered_by_hall.text
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "priority"], unknown.text
    assert "unknown priority 'critical'" in unknown.text
    assert empty.status_code == 422, empty.text
    assert bad_reason.status_code == 422 and bad_reason.json()["detail"][0]["loc"] == ["body", "reason_code"]
    assert (await client.step(complaint_id, "reclassify", {"priority": "normal"}, headers=city)).status_code == 200


async def test_a_pause_for_a_network_fix_leaves_the_response_clock_running_and_stops_the_resolution_clock(
    client: StackClient,
) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start + timedelta(minutes=30))
    hall_id = await client.register_hall()
    complaint_id = await register(client, hall_id, received_at=start.isoformat())

    response = await client.step(complaint_id, "pause", {"reason_code": "awaiting_network_fix"})

    assert response.status_code == 200, response.text
    assert response.json()["pause_reason"] == "awaiting_network_fix"

    async def paused() -> bool:
        return bool(clock_named(await client.clocks(complaint_id), "resolution")["state"] == "paused")

    assert await eventually(paused)
    clocks = await client.clocks(complaint_id)
    assert clock_named(clocks, "first_response")["state"] == "running"
    assert instant(clock_named(clocks, "first_response")["deadline"]) == start + timedelta(hours=9)
