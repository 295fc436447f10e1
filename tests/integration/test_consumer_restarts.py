"""A consumer service killed outright serves its reads again at once, and says when it consumes again."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.harness import StackClient, complaint_body

HTTP_UP_WITHIN_SECONDS = 2.0
# What each service answers from its own data while its consumer rejoins. Scoring has no read API
# of its own (its scores are read from the projections), so its metrics stand in for one.
READS = {
    "escalation": "/api/v1/complaints/{id}/clocks",
    "scoring": "/metrics",
    "projections": "/api/v1/complaints/{id}/timeline",
}


@pytest.mark.parametrize("name", ["escalation", "scoring", "projections"])
async def test_a_killed_consumer_serves_reads_within_two_seconds_and_is_ready_once_it_consumes(
    client: StackClient, name: str
) -> None:
    response = await client.post_complaint(complaint_body(await client.register_hall()))
    complaint_id = response.json()["id"]
    await client.clocks(complaint_id)
    assert len(await client.wait_for_timeline(complaint_id, 1)) == 1
    service = client.stack.services[name]
    service.kill()

    spawned = time.monotonic()
    await asyncio.to_thread(service.start)  # returns once /healthz answers
    http_up_after = time.monotonic() - spawned
    read = await client.http.get(service.url + READS[name].format(id=complaint_id))
    joining = await client.http.get(f"{service.url}/readyz")
    print(f"{name}: HTTP up {http_up_after:.2f} s after the spawn")

    assert http_up_after < HTTP_UP_WITHIN_SECONDS
    assert read.status_code == 200, read.text
    # After a kill the group waits for the dead member's session to expire: the consumer is not live yet.
    assert (joining.status_code, joining.json()) == (
        503,
        {"status": "not_ready", "checks": {"database": True, "consumer": False}, "broker": True},
    )
    await asyncio.to_thread(service.wait_until_ready)
    ready = await client.http.get(f"{service.url}/readyz")
    assert (ready.status_code, ready.json()["checks"]["consumer"]) == (200, True)
