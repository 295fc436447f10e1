"""When the database or the broker is down, callers get a clear answer and nothing is lost."""

from __future__ import annotations

import asyncio
import uuid

from tests.integration.harness import StackClient, complaint_body, eventually


async def relay_failed(client: StackClient) -> bool:
    """The complaints relay has counted a failure to publish (its alert's metric)."""
    metrics = (await client.http.get(f"{client.complaints_url}/metrics")).text
    return any(
        line.startswith('relay_publish_failures_total{relay="complaints-events"}') and float(line.split()[-1]) > 0
        for line in metrics.splitlines()
    )


async def test_broker_down_keeps_intake_ready_and_taking_complaints(client: StackClient) -> None:
    hall_id = await client.register_hall()
    broker = client.stack.broker
    assert broker is not None
    broker.kill()

    ready = await client.http.get(f"{client.complaints_url}/readyz")
    accepted = await client.post_complaint(complaint_body(hall_id))

    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True}, "broker": False}
    assert accepted.status_code == 201
    assert await eventually(lambda: relay_failed(client), timeout=90)  # a producer gives up after its request timeout
    await asyncio.to_thread(client.stack.start_fresh_broker)
    assert await client.wait_until_projected({accepted.json()["id"]}) == {accepted.json()["id"]: 1}


async def test_database_down_gives_503_and_the_retry_succeeds_once_it_is_back(client: StackClient) -> None:
    hall_id = await client.register_hall()
    postgres = client.stack.postgres
    assert postgres is not None
    key = str(uuid.uuid4())
    assert (await client.post_complaint(complaint_body(hall_id))).status_code == 201
    postgres.kill()

    # The first attempt's retries drop the pool's dead connections, so the next ones wait on an
    # empty pool: each must still be answered within the client's 10 s timeout.
    # Without a key, first: the hall just loaded is still cached, so the request goes to the service's own pool
    # (asyncpg) rather than to the event store's.
    refusals = [await client.post_complaint(complaint_body(hall_id))]
    refusals += [await client.post_complaint(complaint_body(hall_id), idempotency_key=key) for _ in range(3)]
    ready = await client.http.get(f"{client.projections_url}/readyz")

    assert {refused.status_code for refused in refusals} == {503}
    assert {refused.headers["Retry-After"] for refused in refusals} == {"1"}
    assert ready.json()["checks"]["database"] is False
    await asyncio.to_thread(postgres.start)
    retried = await client.post_complaint(complaint_body(hall_id), idempotency_key=key)
    assert retried.status_code == 201
    await client.database.expire_connections()
    assert await client.wait_until_projected({retried.json()["id"]}) == {retried.json()["id"]: 1}
