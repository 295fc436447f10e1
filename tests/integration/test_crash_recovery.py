"""Processes die at the worst moment: nothing a caller was promised is lost, nothing is doubled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from services.complaints.application import IDEMPOTENCY_NAMESPACE
from shared.topics import COMPLAINTS_EVENTS
from tests.integration.harness import StackClient, complaint_body


@dataclass
class IntakeOutcome:
    created: dict[str, str] = field(default_factory=dict)  # idempotency key -> complaint id
    refused: set[str] = field(default_factory=set)  # got an HTTP error status
    unanswered: set[str] = field(default_factory=set)  # connection failed: outcome unknown to the caller


async def post_all(
    client: StackClient, hall_id: str, keys: list[str], outcome: IntakeOutcome, concurrency: int = 8
) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in keys:
        queue.put_nowait(key)

    async def worker() -> None:
        while not queue.empty():
            key = queue.get_nowait()
            try:
                response = await client.post_complaint(complaint_body(hall_id, key), idempotency_key=key)
            except httpx.TransportError:
                outcome.unanswered.add(key)
                await asyncio.sleep(0.01)
                continue
            if response.status_code == 201:
                outcome.created[key] = response.json()["id"]
            else:
                outcome.refused.add(key)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def hall_timeline_counts(client: StackClient, hall_id: str) -> dict[str, int]:
    rows = await client.database.fetch(
        "SELECT aggregate_id::text AS id, count(*) AS n FROM projections.timelines"
        " WHERE details->>'hall_id' = $1 GROUP BY aggregate_id",
        hall_id,
    )
    return {row["id"]: row["n"] for row in rows}


async def when_projected(
    client: StackClient, hall_id: str, at_least: int, action: Callable[[], Awaitable[None]]
) -> None:
    while len(await hall_timeline_counts(client, hall_id)) < at_least:
        await asyncio.sleep(0.02)
    await action()


async def assert_projected_exactly_once(client: StackClient, hall_id: str, complaint_ids: set[str]) -> None:
    await client.wait_until_projected(complaint_ids, timeout=90)
    counts = await hall_timeline_counts(client, hall_id)
    assert set(counts) == complaint_ids, (
        f"missing {len(complaint_ids - set(counts))}, unexpected {len(set(counts) - complaint_ids)}"
    )
    assert set(counts.values()) == {1}


async def test_killing_complaints_mid_intake_keeps_every_201_and_nothing_else(client: StackClient) -> None:
    hall_id = await client.register_hall()
    keys = [str(uuid.uuid4()) for _ in range(500)]
    outcome = IntakeOutcome()
    complaints = client.stack.services["complaints"]

    async def kill_after_some_accepted() -> None:
        while len(outcome.created) < 150:
            await asyncio.sleep(0.005)
        complaints.kill()

    await asyncio.gather(post_all(client, hall_id, keys, outcome), kill_after_some_accepted())
    assert outcome.unanswered, "the kill should have cut some requests off"
    await asyncio.to_thread(complaints.start)
    # A front-line system retries what went unanswered, with the same key.
    unanswered, outcome.unanswered = outcome.unanswered, set()
    await post_all(client, hall_id, sorted(unanswered), outcome)

    assert not outcome.unanswered
    assert not outcome.refused
    assert len(outcome.created) == len(keys)
    await assert_projected_exactly_once(client, hall_id, set(outcome.created.values()))
    assert await client.dead_letters() == []


async def test_refused_requests_never_appear_downstream(client: StackClient) -> None:
    hall_id = await client.register_hall()
    accepted_key, refused_key = str(uuid.uuid4()), str(uuid.uuid4())
    accepted = await client.post_complaint(complaint_body(hall_id), idempotency_key=accepted_key)
    refused = await client.post_complaint(
        {**complaint_body(hall_id), "received_at": "2099-01-01T00:00:00+08:00"}, idempotency_key=refused_key
    )
    assert (accepted.status_code, refused.status_code) == (201, 422)

    await assert_projected_exactly_once(client, hall_id, {accepted.json()["id"]})
    refused_id = str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, refused_key))
    assert (await client.http.get(f"{client.complaints_url}/api/v1/complaints/{refused_id}")).status_code == 404


async def test_killing_projections_mid_stream_loses_and_duplicates_nothing(client: StackClient) -> None:
    hall_id = await client.register_hall()
    outcome = IntakeOutcome()
    projections = client.stack.services["projections"]

    async def kill_and_restart() -> None:
        projections.kill()
        await asyncio.to_thread(projections.start)

    await asyncio.gather(
        post_all(client, hall_id, [str(uuid.uuid4()) for _ in range(500)], outcome, concurrency=4),
        when_projected(client, hall_id, 100, kill_and_restart),
    )

    assert not outcome.unanswered and not outcome.refused
    await assert_projected_exactly_once(client, hall_id, set(outcome.created.values()))
    assert await client.dead_letters() == []


async def test_fresh_broker_after_a_kill_gets_everything_again_by_republishing(client: StackClient) -> None:
    hall_id = await client.register_hall()
    outcome = IntakeOutcome()
    stack = client.stack

    async def replace_broker() -> None:
        stack.broker.kill()  # type: ignore[union-attr]
        await asyncio.to_thread(stack.start_fresh_broker)

    await asyncio.gather(
        post_all(client, hall_id, [str(uuid.uuid4()) for _ in range(500)], outcome, concurrency=4),
        when_projected(client, hall_id, 100, replace_broker),
    )
    await asyncio.to_thread(client.republish, 0)

    assert not outcome.unanswered and not outcome.refused
    await assert_projected_exactly_once(client, hall_id, set(outcome.created.values()))


async def test_events_lost_with_the_broker_come_back_only_by_republishing(client: StackClient) -> None:
    stack = client.stack
    projections = stack.services["projections"]
    hall_id = await client.register_hall()
    projections.kill()
    outcome = IntakeOutcome()
    await post_all(client, hall_id, [str(uuid.uuid4()) for _ in range(50)], outcome)
    await client.wait_until_relayed("complaints")
    stack.broker.kill()  # type: ignore[union-attr]
    await asyncio.to_thread(stack.start_fresh_broker)
    await asyncio.to_thread(projections.start)
    await asyncio.to_thread(projections.wait_until_ready)  # consuming the new broker's topics
    await client.wait_until_consumed("projections", only=[COMPLAINTS_EVENTS])  # what the timelines come from
    assert await hall_timeline_counts(client, hall_id) == {}, "the events should have been lost with the broker"

    await asyncio.to_thread(client.republish, 0)

    await assert_projected_exactly_once(client, hall_id, set(outcome.created.values()))
