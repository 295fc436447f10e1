"""Scoring's cost per fact as a hall's month fills up: N complaints into one hall against N spread over N/10 halls;
and the cost of loading a full hall-month with nothing cached, from its snapshot against replaying its events.

Each complaint brings three facts (registered, acknowledged, closed), applied by the scoring
service's own application to a durable embedded PostgreSQL event store, one after another as
its consumer applies them. The spread case, measured in the same run, is the baseline: its
scorecards stay small, so the ratio of the one-hall time to it says how much a full hall-month
costs. A ratio near 1 means the cost of a fact does not grow with the facts its month holds.
"""

from __future__ import annotations

import asyncio
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from eventsourcing.application import project_aggregate

from devstack.postgres import EmbeddedPostgres
from devstack.process import free_port
from services.scoring.application import ScoringApplication
from services.scoring.domain import Scorecard, SourceEvent, scorecard_id
from services.scoring.policy import load_scoring_policies
from shared.contracts import AnyScoringFact, ComplaintClosedFact, ComplaintRegisteredFact, FirstResponseStoppedFact
from shared.database import create_pool
from shared.migrations import RELAY, migrate_schema
from shared.settings import ServiceSettings

COUNTS = [int(n) for n in os.environ.get("BENCH_SCORING_COMPLAINTS", "1000,10000").split(",")]
PERIOD = "2026-11"
AT = datetime(2026, 11, 16, 2, tzinfo=UTC)
SCHEMA = "scoring"


def facts_of(complaint: uuid.UUID) -> Iterator[AnyScoringFact]:
    yield ComplaintRegisteredFact(subject=complaint, priority="normal", channel="app")
    yield FirstResponseStoppedFact(subject=complaint, breached=False)
    yield ComplaintClosedFact(subject=complaint)


def seconds_to_apply(scoring: ScoringApplication, complaints: int, halls: int) -> tuple[float, list[str]]:
    """Complaints go round the halls, so every hall's month fills up at the same pace; and the halls."""
    names = [f"BENCH-{uuid.uuid4().hex[:8]}" for _ in range(halls)]
    started = time.perf_counter()
    for number in range(complaints):
        hall = names[number % halls]
        for fact in facts_of(uuid.uuid4()):
            assert scoring.apply(hall, PERIOD, SourceEvent(uuid.uuid4(), "Bench", AT), fact)
    return time.perf_counter() - started, names


def seconds_to_load(scoring: ScoringApplication, hall: str) -> tuple[float, float, int]:
    """A replica with nothing cached loading a hall's scorecard: from its last snapshot and the events after
    it, and (the baseline) by replaying every event; and how many events it holds."""
    card_id = scorecard_id(hall, PERIOD)
    list(scoring.repository.event_store.get(uuid.uuid4()))  # the application's first connection, not timed
    started = time.perf_counter()
    card: Scorecard = scoring.repository.get(card_id, deepcopy_from_cache=False)  # as scoring loads it
    from_snapshot = time.perf_counter() - started
    started = time.perf_counter()
    replayed = project_aggregate(None, scoring.repository.event_store.get(card_id))
    from_events = time.perf_counter() - started
    assert replayed is not None and (replayed.version, replayed.score) == (card.version, card.score)
    return from_snapshot, from_events, card.version


async def prepare(database_url: str) -> None:
    pool = await create_pool(database_url, SCHEMA)
    try:
        await migrate_schema(database_url, SCHEMA, [RELAY])  # the trace contexts the application stores beside events
    finally:
        await pool.close()


def run(data_dir: Path) -> None:
    postgres = EmbeddedPostgres(data_dir / "postgres", free_port(), data_dir / "postgres.log", durable=True)
    postgres.start()
    try:
        asyncio.run(prepare(postgres.url))
        env = ServiceSettings(database_url=postgres.url).eventsourcing_env(SCHEMA)
        policies = load_scoring_policies()
        print("complaints  one hall       spread over N/10 halls  ratio (one hall / spread)")
        loads: list[tuple[int, float, float, int]] = []
        for complaints in COUNTS:
            # A new application for each case: each starts with nothing cached.
            hot, [hall] = seconds_to_apply(ScoringApplication(env, policies), complaints, 1)
            spread, _ = seconds_to_apply(ScoringApplication(env, policies), complaints, max(complaints // 10, 1))
            facts = complaints * 3
            print(
                f"{complaints:>10,}  {hot:6.1f} s {facts / hot:6,.0f}/s  {spread:6.1f} s {facts / spread:6,.0f}/s"
                f"          {hot / spread:.2f}",
                flush=True,
            )
            loads.append((complaints, *seconds_to_load(ScoringApplication(env, policies), hall)))
        print("the one hall's scorecard loaded with nothing cached (a restart, or beyond the cache):")
        for complaints, from_snapshot, from_events, events in loads:
            print(
                f"{complaints:>10,}  from its snapshot {from_snapshot * 1000:6.0f} ms, replaying its {events:,}"
                f" events {from_events * 1000:6.0f} ms   ratio {from_snapshot / from_events:.2f}",
                flush=True,
            )
    finally:
        postgres.stop()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"memory: peak RSS of this process {rss_mib:.0f} MiB")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as data_dir:
        run(Path(data_dir))


if __name__ == "__main__":
    main()
