"""Work queues end to end: complaints in, SLA milestones from escalation, each unit's queues out."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from shared.auth import Role
from shared.organisation import OrgUnit
from tests.integration.harness import StackClient, bearer, eventually, staff_token
from tests.integration.test_escalation import (
    clock_named,
    instant,
    next_working_morning,
    register_urgent,
)

CITY = OrgUnit(("广东", "深圳"))


async def queue(client: StackClient, view: str, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.http.get(
        f"{client.projections_url}/api/v1/queues/complaints", params={"view": view, **params}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


async def test_an_escalation_to_the_city_is_in_its_escalated_to_queue_until_the_response_clock_stops(
    client: StackClient,
) -> None:
    city = bearer(staff_token("quality-sz", CITY, Role.quality_manager))
    start = next_working_morning(client)
    client.move_clock_to(start)
    hall_id = await client.register_hall()
    complaint_id = await register_urgent(client, hall_id, start)
    milestones = clock_named(await client.clocks(complaint_id), "first_response")["milestones"]
    to_city = next(m for m in milestones if m["kind"] == "escalation" and m["fraction"] == 1.5)

    client.move_clock_to(instant(to_city["due_at"]) + timedelta(milliseconds=50))
    moved = time.monotonic()

    async def escalated() -> bool:
        return complaint_id in ids(await queue(client, "escalated_to", city))

    assert await eventually(escalated, timeout=10)
    seconds_to_show = time.monotonic() - moved
    page = await queue(client, "escalated_to", city)
    item = next(item for item in page["items"] if item["id"] == complaint_id)
    assert item["escalation"] == {"level": 2, "target_unit": str(CITY)}
    assert item["overdue"] and not item["at_risk"]
    # Past, but the clock still runs: overdue first in a queue.
    assert item["next_due"]["clock"] == "first_response"
    assert instant(item["next_due"]["due_at"]) == instant(
        next(m for m in milestones if m["kind"] == "breach")["due_at"]
    )
    assert page["counts"]["escalated_to"] >= 1 and page["counts"]["overdue"] >= 1
    hall_manager = bearer(staff_token("manager", OrgUnit((*CITY.path, hall_id)), Role.hall_manager))
    assert complaint_id not in ids(await queue(client, "escalated_to", hall_manager))  # level 1 was the hall's
    print(f"escalation to level 2 in the city's queue {seconds_to_show:.2f} s after its milestone")

    assert (await client.step(complaint_id, "acknowledge")).status_code == 200

    async def left() -> bool:
        return complaint_id not in ids(await queue(client, "escalated_to", city))

    assert await eventually(left)
    assert complaint_id not in ids(await queue(client, "overdue", city))


async def test_a_dispatched_complaint_waits_in_the_receivers_hand_off_queue_until_accepted(
    client: StackClient,
) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start)
    sender, receiver = await client.register_hall(), await client.register_hall()
    receiving = OrgUnit((*CITY.path, receiver))
    receiver_manager = bearer(staff_token("receiver", receiving, Role.hall_manager))
    complaint_id = await register_urgent(client, sender, start)
    assert (await client.step(complaint_id, "dispatch", {"to_unit": receiver})).status_code == 200

    async def pending() -> bool:
        return complaint_id in ids(await queue(client, "hand_off_pending", receiver_manager))

    assert await eventually(pending)
    assert complaint_id not in ids(await queue(client, "owned", receiver_manager))
    assert (await client.step(complaint_id, "accept", headers=receiver_manager)).status_code == 200

    async def owned() -> bool:
        return complaint_id in ids(await queue(client, "owned", receiver_manager))

    assert await eventually(owned)
    assert complaint_id not in ids(await queue(client, "hand_off_pending", receiver_manager))


async def test_a_queue_comes_by_next_due_instant_a_page_at_a_time_and_only_within_the_callers_unit(
    client: StackClient,
) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start + timedelta(hours=1))
    hall_id = await client.register_hall()
    manager = bearer(staff_token("manager", OrgUnit((*CITY.path, hall_id)), Role.hall_manager))
    received = [start + timedelta(minutes=minutes) for minutes in (40, 0, 20)]
    complaint_ids = [await register_urgent(client, hall_id, at) for at in received]
    paused = await register_urgent(client, hall_id, start)
    assert (await client.step(paused, "pause")).status_code == 200

    async def all_scheduled() -> bool:
        page = await queue(client, "owned", manager)
        due = {item["id"]: item["next_due"] for item in page["items"]}
        return all(due.get(c) is not None for c in complaint_ids) and page["counts"]["paused"] == 1

    assert await eventually(all_scheduled)
    walked: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await queue(client, "owned", manager, limit=1, **({"cursor": cursor} if cursor else {}))
        walked += page["items"]
        if (cursor := page["next_cursor"]) is None:
            break
    by_received = [complaint_ids[i] for i in sorted(range(3), key=lambda i: received[i])]
    assert [item["id"] for item in walked if item["id"] != paused] == by_received
    assert sorted(item["id"] for item in walked) == sorted([*complaint_ids, paused])
    # The paused one's clocks run again after the policy's longest pause, if it has one: last, or by then.
    dues = [
        (item["next_due"] is None, datetime.fromisoformat(item["next_due"]["due_at"]) if item["next_due"] else start)
        for item in walked
    ]
    assert dues == sorted(dues)
    assert page["counts"]["owned"] == 4 and page["counts"]["paused"] == 1
    assert [item["id"] for item in (await queue(client, "paused", manager))["items"]] == [paused]

    other_city = bearer(staff_token("elsewhere", OrgUnit(("广东", "佛山")), Role.quality_manager))
    outside = await client.http.get(
        f"{client.projections_url}/api/v1/queues/complaints",
        params={"view": "owned", "unit": str(OrgUnit((*CITY.path, hall_id)))},
        headers=other_city,
    )
    assert outside.status_code == 404 and outside.json()["detail"][0]["loc"] == ["query", "unit"]
    bad_cursor = await client.http.get(
        f"{client.projections_url}/api/v1/queues/complaints",
        params={"view": "owned", "cursor": "not-a-cursor"},
        headers=manager,
    )
    assert bad_cursor.status_code == 422 and bad_cursor.json()["detail"][0]["loc"] == ["query", "cursor"]


async def test_a_manual_escalation_to_the_province_is_in_its_escalated_to_queue_until_the_complaint_closes(
    client: StackClient,
) -> None:
    province = OrgUnit(CITY.path[:1])
    province_quality = bearer(staff_token("quality-gd", province, Role.quality_manager))
    start = next_working_morning(client)
    client.move_clock_to(start)
    complaint_id = await register_urgent(client, await client.register_hall(), start)
    assert (await client.step(complaint_id, "escalate", {"target_unit": str(province)})).status_code == 200

    async def escalated() -> dict[str, Any] | None:
        page = await queue(client, "escalated_to", province_quality)
        return next((item for item in page["items"] if item["id"] == complaint_id), None)

    async def shown() -> bool:
        return await escalated() is not None

    async def gone() -> bool:
        return await escalated() is None

    assert await eventually(shown)
    item = await escalated()
    assert item is not None and item["escalation"] == {"level": 3, "target_unit": str(province)}
    for action, body in (
        ("resolve-on-spot", {}),
        ("feedback", {"satisfaction": "satisfied"}),
        ("close", {}),
    ):
        assert (await client.step(complaint_id, action, body)).status_code == 200, action
    assert await eventually(gone)
