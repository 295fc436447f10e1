"""Mass incidents end to end: suggested children, linked in one batch, acknowledged in one bulk action."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from shared.auth import Role
from shared.organisation import OrgUnit
from tests.integration.harness import StackClient, bearer, complaint_body, eventually, staff_token
from tests.integration.test_escalation import next_working_morning

CITY = OrgUnit(("广东", "深圳"))
CHILDREN = 300


async def register_many(client: StackClient, hall_ids: list[str], count: int, **fields: Any) -> list[str]:
    gate = asyncio.Semaphore(16)

    async def one(index: int) -> str:
        async with gate:
            body = {**complaint_body(hall_ids[index % len(hall_ids)]), **fields}
            response = await client.post_complaint(body)
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

    return list(await asyncio.gather(*(one(index) for index in range(count))))


async def test_three_hundred_children_are_acknowledged_by_one_bulk_action_the_closed_one_refused_a_retry_adding_none(
    client: StackClient,
) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start + timedelta(hours=1))
    hall_ids = [await client.register_hall() for _ in range(3)]
    children = await register_many(
        client, hall_ids, CHILDREN, category="network_quality", received_at=(start + timedelta(minutes=10)).isoformat()
    )
    closed = children[0]
    for action, body in (("resolve-on-spot", {}), ("feedback", {"satisfaction": "satisfied"}), ("close", {})):
        assert (await client.step(closed, action, body)).status_code == 200
    city = bearer(staff_token("handler-sz", CITY, Role.handler))
    opened = await client.http.post(
        f"{client.complaints_url}/api/v1/incidents",
        json={
            "cause": "Fibre cut on the Futian backbone",
            "area": str(CITY),
            "category": "network_quality",
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(hours=1)).isoformat(),
        },
        headers=city,
    )
    assert opened.status_code == 201, opened.text
    incident = opened.json()["id"]
    suggestions = f"{client.projections_url}/api/v1/incidents/{incident}/suggestions"

    async def all_suggested() -> bool:
        response = await client.http.get(suggestions, params={"limit": 1000}, headers=city)
        return response.status_code == 200 and set(children[1:]) <= {item["id"] for item in response.json()["items"]}

    assert await eventually(all_suggested)
    suggested = {item["id"] for item in (await client.http.get(suggestions, params={"limit": 1000})).json()["items"]}
    assert closed not in suggested  # closed: no candidate

    linked = await client.http.post(
        f"{client.complaints_url}/api/v1/incidents/{incident}/children",
        json={"reason": "same outage", "add": children},
        headers=city,
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["done"] == CHILDREN

    acknowledge = f"{client.complaints_url}/api/v1/incidents/{incident}/acknowledge"
    body = {"reason": "A fibre cut in Futian; repairs under way, service back by 14:00"}
    started = time.monotonic()
    first = await client.http.post(acknowledge, json=body, headers={**city, "Idempotency-Key": "ack-1"}, timeout=60)
    seconds = time.monotonic() - started
    retry = await client.http.post(acknowledge, json=body, headers={**city, "Idempotency-Key": "ack-1"}, timeout=60)

    assert first.status_code == 200, first.text
    answer = first.json()
    assert (answer["done"], answer["refused"]) == (CHILDREN - 1, 1)
    [refused] = [result for result in answer["results"] if result["outcome"] == "refused"]
    assert refused["id"] == closed and "closed" in refused["reason"]
    assert retry.status_code == 200 and retry.json() == answer
    assert retry.headers.get("Idempotent-Replayed") == "true"
    print(f"bulk acknowledge of {CHILDREN} children: {seconds:.2f} s")

    async def every_response_clock_stopped() -> bool:
        stopped = await client.database.fetchval(
            "SELECT count(DISTINCT subject_id) FROM projections.sla_clock_stops"
            " WHERE clock = 'first_response' AND subject_id = ANY($1::uuid[])",
            children,
        )
        return bool(stopped == CHILDREN)

    assert await eventually(every_response_clock_stopped, timeout=60)
    acknowledged = await client.database.fetchval(
        "SELECT count(*) FROM projections.timelines WHERE event_type = 'ComplaintAcknowledged'"
        " AND aggregate_id = ANY($1::uuid[]) AND details->>'incident_id' = $2",
        children,
        incident,
    )
    assert acknowledged == CHILDREN - 1  # the retry added none
    listed = await client.http.get(
        f"{client.projections_url}/api/v1/complaints", params={"incident": incident, "limit": 500}
    )
    assert {item["id"] for item in listed.json()["items"]} == set(children)


async def test_a_complaint_outside_the_area_is_refused_and_an_incident_outside_ones_unit_cannot_be_opened(
    client: StackClient,
) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start)
    inside = await client.register_hall()
    outside = await client.register_hall(city="广州")
    [mine] = await register_many(client, [inside], 1)
    [theirs] = await register_many(client, [outside], 1)
    city = bearer(staff_token("handler-sz", CITY, Role.handler))
    window = {"window_start": (start - timedelta(hours=1)).isoformat(), "window_end": start.isoformat()}
    incident = {"cause": "outage", "area": str(CITY), "category": "billing", **window}

    elsewhere = await client.http.post(
        f"{client.complaints_url}/api/v1/incidents",
        json={**incident, "area": "group/广东/广州"},
        headers=city,
    )
    backwards = await client.http.post(
        f"{client.complaints_url}/api/v1/incidents",
        json={**incident, "window_end": (start - timedelta(hours=2)).isoformat()},
        headers=city,
    )
    opened = await client.http.post(f"{client.complaints_url}/api/v1/incidents", json=incident, headers=city)

    assert elsewhere.status_code == 403, elsewhere.text
    assert backwards.status_code == 422, backwards.text
    assert opened.status_code == 201, opened.text
    children = f"{client.complaints_url}/api/v1/incidents/{opened.json()['id']}/children"
    linked = await client.http.post(children, json={"reason": "outage", "add": [mine, theirs]})
    assert [r["outcome"] for r in linked.json()["results"]] == ["done", "refused"], linked.text
    too_many = await client.http.post(children, json={"reason": "outage", "add": [mine] * 1001})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "add"], too_many.text
