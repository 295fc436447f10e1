"""Deadline firing with 100,000 open SLA clocks: how late each milestone fires, and the memory it takes.

The escalation service's own scheduler, application and deadlines table run in this
process against a durable embedded PostgreSQL; the clock is moved so that a stream of
deadlines falls due during the measurement, plus a burst of many at the same instant
(clocks that all started when the halls opened). Delay = the stored event's instant
minus the milestone's due instant.

Baseline, measured in the same run on the same table: claiming due rows with the same
`FOR UPDATE SKIP LOCKED` query and deleting them, without loading or firing anything.
The ratio says how much of the raw claim rate firing keeps.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from devstack.postgres import EmbeddedPostgres
from devstack.process import free_port
from services.escalation import scheduler
from services.escalation.application import EscalationApplication
from services.escalation.calendar import Calendars
from services.escalation.main import OWN_MIGRATIONS
from services.escalation.policy import load_policies
from services.escalation.repositories import PostgresDeadlines
from services.escalation.tracking import Opening, SlaRules, SlaSubject
from shared.clock import CHINA_TIME, system_clock
from shared.migrations import migrate_schema
from shared.organisation import OrgUnit
from shared.settings import ServiceSettings

OPEN_CLOCKS = int(os.environ.get("BENCH_OPEN_CLOCKS", 100_000))
STREAM = int(os.environ.get("BENCH_STREAM", 6_000))  # fall due one after another during the window
STREAM_SECONDS = 60
BURST = int(os.environ.get("BENCH_BURST", 500))  # fall due at the same instant, mid-window
START = datetime(2026, 12, 1, 10, 0, tzinfo=CHINA_TIME)  # a Tuesday, inside business hours
WARNING_AFTER = timedelta(hours=1)  # half of an urgent complaint's 2 working hours
BASELINE_ROWS = 20_000
BURST_DUE = START + timedelta(seconds=STREAM_SECONDS / 2, microseconds=500)  # between two of the stream's


class BenchClock:
    """Real time, shifted so the bench's START is now when `start` is called."""

    def __init__(self) -> None:
        self.offset = START - system_clock()

    def start(self) -> None:
        self.offset = START - system_clock()

    def __call__(self) -> datetime:
        return system_clock() + self.offset


def opening(received_at: datetime) -> Opening:
    return Opening(
        subject_id=uuid.uuid4(),
        kind="complaint",
        hall=OrgUnit(("广东", "深圳", "BENCH-HALL")),
        started_by="ComplaintRegistered",
        started_at=received_at,
        source_event_id=uuid.uuid4(),
        category="billing",
        priority="urgent",
        channel="app",
    )


def received_instants() -> list[datetime]:
    """Warnings spread over the window, a burst at its middle, and the rest due days later."""
    window = timedelta(seconds=STREAM_SECONDS)
    stream = [START + window * (i + 1) / STREAM - WARNING_AFTER for i in range(STREAM)]
    burst = [BURST_DUE - WARNING_AFTER] * BURST
    later = [START + timedelta(days=2) + timedelta(seconds=i % 3600) for i in range(OPEN_CLOCKS - STREAM - BURST)]
    return stream + burst + later


async def open_clocks(application: EscalationApplication, pool: asyncpg.Pool) -> float:
    started = time.perf_counter()
    instants = received_instants()
    for first in range(0, len(instants), 1000):
        subjects = [SlaSubject.open(application.rules, opening(at)) for at in instants[first : first + 1000]]
        await asyncio.to_thread(application.save, *subjects)
        async with pool.acquire() as connection:
            await PostgresDeadlines(connection).record([application.due(subject) for subject in subjects])
        if first % 20_000 == 0:
            print(f"  opened {first + len(subjects):,} clocks", flush=True)
    return time.perf_counter() - started


def fired_delays(application: EscalationApplication) -> tuple[list[float], list[float]]:
    """Seconds from due instant to stored event: of the spread stream, and of the burst."""
    stream: list[float] = []
    burst: list[float] = []
    position = 0
    while batch := application.recorder.select_notifications(start=position, limit=5000, inclusive_of_start=False):
        for notification in batch:
            event = application.mapper.to_domain_event(notification)
            if isinstance(event, SlaSubject.MilestoneReached):
                delay = (event.timestamp - event.due_at).total_seconds()
                (burst if event.due_at == BURST_DUE else stream).append(delay)
        position = batch[-1].id
    return stream, burst


async def baseline_claims_per_second(pool: asyncpg.Pool) -> float:
    await pool.execute("CREATE TABLE bench_claims (LIKE sla_deadlines INCLUDING ALL)")
    await pool.execute(
        "INSERT INTO bench_claims SELECT gen_random_uuid(), now() - interval '1 hour', 1 FROM generate_series(1, $1)",
        BASELINE_ROWS,
    )
    started = time.perf_counter()
    while True:
        async with pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                "SELECT sla_id FROM bench_claims WHERE due_at <= now() ORDER BY due_at LIMIT 200 FOR UPDATE SKIP LOCKED"
            )
            if not rows:
                break
            await connection.execute("DELETE FROM bench_claims WHERE sla_id = ANY($1)", [r["sla_id"] for r in rows])
    return BASELINE_ROWS / (time.perf_counter() - started)


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=1000)[int(share * 1000) - 1]


async def run(data_dir: Path) -> None:
    postgres = EmbeddedPostgres(data_dir / "postgres", free_port(), data_dir / "postgres.log", durable=True)
    postgres.start()
    try:
        settings = ServiceSettings(database_url=postgres.url)
        pool = await asyncpg.create_pool(postgres.url, server_settings={"search_path": "escalation"})
        assert pool is not None
        await pool.execute("CREATE SCHEMA IF NOT EXISTS escalation")
        await migrate_schema(postgres.url, "escalation", [OWN_MIGRATIONS])
        clock = BenchClock()
        rules = SlaRules(load_policies(), Calendars(assume_weekdays_in_unknown_years=True))
        application = EscalationApplication(settings.eventsourcing_env("escalation"), rules, clock)

        print(f"opening {OPEN_CLOCKS:,} clocks ...", flush=True)
        opening_seconds = await open_clocks(application, pool)
        baseline = await baseline_claims_per_second(pool)

        clock.start()
        task = asyncio.create_task(scheduler.Scheduler(application, pool, clock).run())
        await asyncio.sleep(STREAM_SECONDS + 5)
        task.cancel()
        stream, burst = fired_delays(application)
        table_bytes = await pool.fetchval("SELECT pg_total_relation_size('sla_deadlines')")
        store_bytes = await pool.fetchval("SELECT pg_total_relation_size('escalation_events')")
        rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        await pool.close()
        application.close()
    finally:
        postgres.stop()

    everything = stream + burst
    burst_rate = len(burst) / max(burst)
    print(f"\nopen clocks: {OPEN_CLOCKS:,} (opened in {opening_seconds:.0f} s)")
    print(f"milestones due in the {STREAM_SECONDS} s window: {STREAM:,} spread evenly, {BURST:,} at one instant")
    print(f"fired: {len(stream):,} spread, {len(burst):,} burst (any other number is a bug)")
    print(f"delay, due instant to stored event: {summary(everything)} over all")
    print(f"                                    {summary(stream)} for the spread stream")
    print(f"                                    {summary(burst)} for the burst")
    print(f"baseline: claiming and deleting due rows without firing: {baseline:,.0f} rows/s")
    print(f"burst fired at {burst_rate:,.0f} milestones/s; ratio to baseline {burst_rate / baseline:.3f}")
    print(f"memory: peak RSS of this process {rss_mib:.0f} MiB (scheduler and application, after opening all clocks)")
    print(f"PostgreSQL: deadlines table {table_bytes / 2**20:.1f} MiB, event store {store_bytes / 2**20:.0f} MiB")


def summary(delays: list[float]) -> str:
    return (
        f"median {statistics.median(delays) * 1000:.0f} ms, p99 {percentile(delays, 0.99) * 1000:.0f} ms,"
        f" max {max(delays) * 1000:.0f} ms"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-escalation-") as data_dir:
        asyncio.run(run(Path(data_dir)))


if __name__ == "__main__":
    main()
