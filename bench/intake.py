"""Intake throughput: complaints registered per second over REST, and end to end into the projection.

Baseline, measured in the same run on the same PostgreSQL: durable single-row inserts
through asyncpg from as many concurrent connections as there are HTTP clients. The
ratio says how much of the database's raw write rate the full intake path keeps.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from devstack.stack import Stack, StackConfig

COMPLAINTS = 2000
CONCURRENCY = 16


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
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=CONCURRENCY)) as http:
        hall_id = f"BENCH-{uuid.uuid4().hex[:8]}"
        hall = {"hall_id": hall_id, "name": "n", "province": "p", "city": "c", "level": 1, "ownership": "partner"}
        (await http.post(f"{complaints}/api/v1/halls", json=hall)).raise_for_status()
        body = {
            "hall_id": hall_id,
            "channel": "app",
            "category": "billing",
            "priority": "normal",
            "customer": {"name": "张三", "phone": "13812345678"},
            "description": "benchmark",
        }
        remaining = iter(range(COMPLAINTS))

        async def client() -> None:
            for _ in remaining:
                (await http.post(f"{complaints}/api/v1/complaints", json=body)).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        posted = time.perf_counter() - started
        database = await asyncpg.connect(stack.database_url)
        query = "SELECT count(*) FROM projections.complaint_timeline WHERE details->>'hall_id' = $1"
        while await database.fetchval(query, hall_id) < COMPLAINTS:
            await asyncio.sleep(0.05)
        projected = time.perf_counter() - started
        await database.close()
    return COMPLAINTS / posted, COMPLAINTS / projected


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-") as data_dir:
        config = StackConfig.for_tests(Path(data_dir))
        config.durable = True
        stack = Stack(config)
        try:
            stack.start()
            baseline = asyncio.run(baseline_inserts_per_second(stack.database_url))
            posted, projected = asyncio.run(intake(stack))
        finally:
            stack.stop()
    print(f"{COMPLAINTS} complaints, {CONCURRENCY} concurrent clients, durable PostgreSQL")
    print(f"baseline: raw asyncpg inserts          {baseline:8.0f} /s")
    print(f"POST /api/v1/complaints (201 returned) {posted:8.0f} /s   ratio to baseline {posted / baseline:.2f}")
    print(f"end to end, visible in the timeline    {projected:8.0f} /s   ratio to baseline {projected / baseline:.2f}")


if __name__ == "__main__":
    main()
