"""Intake throughput: complaints registered per second over REST, and end to end into the projection.

Baseline, measured in the same run on the same PostgreSQL: durable single-row inserts
through asyncpg from as many concurrent connections as there are HTTP clients. The
ratio says how much of the database's raw write rate the full intake path keeps.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from devstack.stack import Stack, StackConfig
from shared.auth import AuthSettings, Role, issue_staff_token
from shared.organisation import OrgUnit

COMPLAINTS = 2000
CONCURRENCY = 16
SEQUENTIAL_COMPLAINTS = 500


def admin_headers() -> dict[str, str]:
    token = issue_staff_token(AuthSettings(), "bench", OrgUnit(), [Role.admin], timedelta(hours=1))
    return {"Authorization": f"Bearer {token}"}


async def new_hall_and_complaint_body(http: httpx.AsyncClient, complaints_url: str) -> tuple[str, dict[str, Any]]:
    hall_id = f"BENCH-{uuid.uuid4().hex[:8]}"
    hall = {"hall_id": hall_id, "name": "n", "province": "p", "city": "c", "level": 1, "ownership": "partner"}
    (await http.post(f"{complaints_url}/api/v1/halls", json=hall)).raise_for_status()
    body = {
        "hall_id": hall_id,
        "channel": "app",
        "category": "billing",
        "priority": "normal",
        "customer": {"name": "张三", "phone": "13812345678"},
        "description": "benchmark",
    }
    return hall_id, body


async def baseline_inserts_per_second(database_url: str) -> float:
    pool = await asyncpg.create_pool(database_url, min_size=CONCURRENCY, max_size=CONCURRENCY)
    assert pool is not None
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_baseline (id uuid PRIMARY KEY, body text NOT NULL)")
    remaining = iter(range(COMPLAINTS))

    async def writer() -> None:
        for _ in remaining:
            await pool.execute("INSERT INTO bench_baseline VALUES ($1, $2)", uuid.uuid4(), "x" * 300)

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return COMPLAINTS / elapsed


async def intake(stack: Stack) -> tuple[float, float]:
    complaints = stack.services["complaints"].url
    async with httpx.AsyncClient(
        timeout=30, limits=httpx.Limits(max_connections=CONCURRENCY), headers=admin_headers()
    ) as http:
        hall_id, body = await new_hall_and_complaint_body(http, complaints)
        remaining = iter(range(COMPLAINTS))

        async def client() -> None:
            for _ in remaining:
                (await http.post(f"{complaints}/api/v1/complaints", json=body)).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        posted = time.perf_counter() - started
        database = await asyncpg.connect(stack.database_url)
        query = "SELECT count(*) FROM projections.timelines WHERE details->>'hall_id' = $1"
        while await database.fetchval(query, hall_id) < COMPLAINTS:
            await asyncio.sleep(0.05)
        projected = time.perf_counter() - started
        await database.close()
    return COMPLAINTS / posted, COMPLAINTS / projected


async def sequential_with_delays(stack: Stack) -> tuple[float, list[float]]:
    """One client posting one complaint at a time; and each event's delay from commit to projection."""
    complaints = stack.services["complaints"].url
    async with httpx.AsyncClient(timeout=30, headers=admin_headers()) as http:
        hall_id, body = await new_hall_and_complaint_body(http, complaints)
        started = time.perf_counter()
        for _ in range(SEQUENTIAL_COMPLAINTS):
            (await http.post(f"{complaints}/api/v1/complaints", json=body)).raise_for_status()
        rate = SEQUENTIAL_COMPLAINTS / (time.perf_counter() - started)
    database = await asyncpg.connect(stack.database_url)
    query = """
        SELECT extract(epoch FROM i.processed_at - t.occurred_at) AS delay
        FROM projections.timelines t
        JOIN projections.consumer_inbox i ON i.event_id = t.event_id
        WHERE t.details->>'hall_id' = $1
    """
    while len(rows := await database.fetch(query, hall_id)) < SEQUENTIAL_COMPLAINTS:
        await asyncio.sleep(0.05)
    await database.close()
    return rate, sorted(float(row["delay"]) for row in rows)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-") as data_dir:
        config = StackConfig.for_tests(Path(data_dir))
        config.durable = True
        stack = Stack(config)
        try:
            started = time.perf_counter()
            stack.start()
            startup = time.perf_counter() - started
            sequential, delays = asyncio.run(sequential_with_delays(stack))
            baseline = asyncio.run(baseline_inserts_per_second(stack.database_url))
            posted, projected = asyncio.run(intake(stack))
        finally:
            stack.stop()
    print(f"stack start (first run, fresh data folder) to ready: {startup:.1f} s")
    median, p99 = statistics.median(delays), delays[int(len(delays) * 0.99) - 1]
    print(f"one sequential client: {sequential:.0f} complaints/s ({SEQUENTIAL_COMPLAINTS} POSTs)")
    print(
        f"delay from commit to timeline: median {median * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,"
        f" max {delays[-1] * 1000:.0f} ms"
    )
    print(f"{COMPLAINTS} complaints, {CONCURRENCY} concurrent clients, durable PostgreSQL")
    print(f"baseline: raw asyncpg inserts          {baseline:8.0f} /s")
    print(f"POST /api/v1/complaints (201 returned) {posted:8.0f} /s   ratio to baseline {posted / baseline:.2f}")
    print(f"end to end, visible in the timeline    {projected:8.0f} /s   ratio to baseline {projected / baseline:.2f}")


if __name__ == "__main__":
    main()
