"""Read-model rebuild rate from 1,000,000 stored events, and grades for 20,000 halls under a new policy.

The events (halls, complaints running to closure, and the scoring service's recalculations)
are generated as real contracts and stored on the local broker; the rebuild is the one
`make rebuild` runs, into a durable embedded PostgreSQL. Baseline, measured in the same run:
reading and decoding the same messages without applying them. The what-if replays every
recorded fact of the period for 20,000 halls under a policy with other weights, and grades them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devstack.broker import TansuBroker
from devstack.postgres import EmbeddedPostgres
from devstack.process import free_port
from services.projections.main import MIGRATIONS as PROJECTIONS_MIGRATIONS
from services.projections.rebuild import TOPICS, replay
from services.scoring.main import OWN_MIGRATIONS as scoring_migrations
from services.scoring.policy import load_scoring_policies
from services.scoring.what_if import what_if
from shared.clock import CHINA_TIME
from shared.contracts import (
    SCORING_FACT,
    AnyScoringFact,
    ComplaintClosedV1,
    ComplaintRegisteredV2,
    ComplaintResolvedOnSpotV1,
    Contract,
    FeedbackReceivedV1,
    HallRegisteredV1,
    InspectedFact,
    ScoreRecalculatedV1,
    build_event,
    decode_event,
    encode_event,
)
from shared.database import create_pool
from shared.migrations import migrate_schema
from shared.organisation import OrgUnit
from shared.streaming import end_offsets
from shared.topics import COMPLAINTS_EVENTS, SCORING_EVENTS

EVENTS = int(os.environ.get("BENCH_EVENTS", 1_000_000))
HALLS = int(os.environ.get("BENCH_HALLS", 20_000))
PERIOD = "2026-11"
MONTH_START = datetime(2026, 11, 1, tzinfo=CHINA_TIME)


Message = tuple[str, bytes, bytes]
HallRow = tuple[object, ...]  # a row of scoring's `halls`
ScoreRow = tuple[object, ...]  # a row of scoring's `score_changes`


def hall_events() -> tuple[list[Message], list[HallRow], list[ScoreRow]]:
    """The halls' registrations; the rows scoring's read model keeps of them; and an inspection of each
    hall in scoring's read model, the evidence a grade needs (the broker's events have none)."""
    messages: list[Message] = []
    rows: list[HallRow] = []
    inspections: list[ScoreRow] = []
    for number in range(HALLS):
        hall_id = f"H{number:05}"
        contract = HallRegisteredV1(
            hall_id=hall_id,
            name="hall",
            province=f"P{number % 31:02}",
            city=f"C{number % 300:03}",
            level=1 + number % 4,
            ownership="partner" if number % 10 == 0 else "self_operated",
        )
        messages.append(message(COMPLAINTS_EVENTS, contract, uuid.uuid5(uuid.NAMESPACE_OID, hall_id), 1, MONTH_START))
        rows.append((hall_id, contract.province, contract.city, contract.level, contract.ownership, MONTH_START))
        inspection = InspectedFact(subject=uuid.uuid5(uuid.NAMESPACE_OID, f"inspection/{hall_id}"), bonus=0)
        inspections.append(score_row(hall_id, 1, inspection, "InspectionCompleted"))
    return messages, rows, inspections


def score_row(hall_id: str, version: int, fact: AnyScoringFact, source_event_type: str) -> ScoreRow:
    return (
        scorecard_of(hall_id),
        version,
        hall_id,
        PERIOD,
        fact.subject,
        fact.model_dump_json(),
        uuid.uuid5(fact.subject, source_event_type),
        source_event_type,
        "2026-01",
        100,
        90,
        "[]",
        MONTH_START,
        MONTH_START,
    )


def scorecard_of(hall_id: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_OID, f"{hall_id}/{PERIOD}")


def complaint_events(index: int, versions: dict[str, int]) -> tuple[list[Message], list[ScoreRow]]:
    """One complaint resolved on the spot, rated and closed, with the recalculation each step caused, and
    the score changes scoring's read model keeps of them."""
    hall_id = f"H{random.randrange(HALLS):05}"
    complaint_id = uuid.uuid4()
    at = MONTH_START + timedelta(minutes=index % 40_000)
    satisfaction = random.choice(["satisfied", "basically_satisfied", "unsatisfied"])
    steps: list[tuple[Contract, dict[str, object]]] = [
        (
            ComplaintRegisteredV2(
                complaint_number=f"C{index}",
                hall_id=hall_id,
                channel="app",
                category="billing",
                priority="normal",
                owner="bench",
                received_at=at,
                province="P",
                city="C",
            ),
            {"kind": "complaint_registered", "priority": "normal", "channel": "app"},
        ),
        (ComplaintResolvedOnSpotV1(actor="bench", reason="bench", at=at), {"kind": "acknowledged"}),
        (
            FeedbackReceivedV1(actor="bench", reason="bench", at=at, satisfaction=satisfaction, score=3),
            {"kind": "feedback", "satisfaction": satisfaction},
        ),
        (ComplaintClosedV1(actor="bench", reason="bench", at=at), {"kind": "closed"}),
    ]
    messages: list[Message] = []
    rows: list[ScoreRow] = []
    for version, (contract, fact) in enumerate(steps, start=1):
        source = message(COMPLAINTS_EVENTS, contract, complaint_id, version, at)
        versions[hall_id] = versions.get(hall_id, 1) + 1
        recalculated = ScoreRecalculatedV1(
            hall_id=hall_id,
            period=PERIOD,
            subject_id=complaint_id,
            fact={**fact, "subject": str(complaint_id)},
            source_event_id=uuid.uuid5(complaint_id, str(version)),
            source_event_type=contract.event_type,
            policy_version="2026-01",
            score_before=100,
            score=90,
            components={},
            deductions=0,
            changes=[],
            at=at,
        )
        messages += [source, message(SCORING_EVENTS, recalculated, scorecard_of(hall_id), versions[hall_id], at)]
        rows.append(
            score_row(hall_id, versions[hall_id], SCORING_FACT.validate_python(recalculated.fact), contract.event_type)
        )
    return messages, rows


def message(
    topic: str, contract: Contract, aggregate_id: uuid.UUID, version: int, at: datetime
) -> tuple[str, bytes, bytes]:
    event = build_event(contract, source="bench", aggregate_id=aggregate_id, aggregate_version=version, occurred_at=at)
    return topic, str(aggregate_id).encode(), encode_event(event)


async def store_events(bootstrap_servers: str, scoring: asyncpg.Pool) -> int:
    """Stores the events on the broker, for the rebuild; and what scoring's read model holds of them, for the
    what-if, which reads scoring's own copy of its store (scoring has no rebuild from the broker)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=20, max_batch_size=1_000_000)
    await producer.start()
    stored = 0
    versions: dict[str, int] = {}
    try:
        pending, halls, score_rows = hall_events()
        await scoring.copy_records_to_table("halls", records=halls)
        index = 0
        while stored + len(pending) < EVENTS:
            messages, rows = complaint_events(index, versions)
            pending += messages
            score_rows += rows
            index += 1
            if len(pending) >= 20_000:
                stored += await send(producer, pending)
                await scoring.copy_records_to_table("score_changes", records=score_rows)
                pending, score_rows = [], []
        stored += await send(producer, pending)
        await scoring.copy_records_to_table("score_changes", records=score_rows)
    finally:
        await producer.stop()
    return stored


async def send(producer: AIOKafkaProducer, messages: list[Message]) -> int:
    deliveries = [await producer.send(topic, value, key=key) for topic, key, value in messages]
    await asyncio.gather(*deliveries)
    return len(messages)


async def read_and_decode_per_second(bootstrap_servers: str) -> float:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(t, p) for t in TOPICS for p in reader.partitions_for_topic(t) or ()]
        ends = {tp: end for tp, end in (await end_offsets(bootstrap_servers, partitions)).items() if end > 0}
        reader.assign(list(ends))
        await reader.seek_to_beginning(*ends)
        total = sum(ends.values())
        started = time.perf_counter()
        read = 0
        while read < total:
            for batch in (await reader.getmany(timeout_ms=1000, max_records=2000)).values():
                for record in batch:
                    decode_event(record.value)
                read += len(batch)
        return read / (time.perf_counter() - started)
    finally:
        await reader.stop()


async def run(data_dir: Path) -> None:
    postgres = EmbeddedPostgres(data_dir / "postgres", free_port(), data_dir / "postgres.log", durable=True)
    broker = TansuBroker(free_port(), data_dir / "broker.log")
    postgres.start()
    broker.start()
    try:
        print(f"storing {EVENTS:,} events for {HALLS:,} halls ...", flush=True)
        scoring = await create_pool(postgres.url, "scoring", max_size=2)
        await migrate_schema(postgres.url, "scoring", [scoring_migrations])
        started = time.perf_counter()
        stored = await store_events(broker.bootstrap_servers, scoring)
        print(f"  stored {stored:,} in {time.perf_counter() - started:.0f} s", flush=True)
        baseline = await read_and_decode_per_second(broker.bootstrap_servers)

        pool = await create_pool(postgres.url, "projections", max_size=2)
        await migrate_schema(postgres.url, "projections", PROJECTIONS_MIGRATIONS)
        started = time.perf_counter()
        applied, refused = await replay(postgres.url, "projections", broker.bootstrap_servers)
        rebuild_seconds = time.perf_counter() - started

        policies = load_scoring_policies()
        draft = policies["2026-01"].model_copy(
            update={
                "version": "draft",
                "weights": {**policies["2026-01"].weights, "resolution_rate": 20, "satisfaction": 30},
            }
        )
        started = time.perf_counter()
        report = await what_if(scoring, policies, PERIOD, OrgUnit(), draft)
        what_if_seconds = time.perf_counter() - started
        await pool.close()
        await scoring.close()
    finally:
        broker.stop()
        postgres.stop()

    rate = applied / rebuild_seconds
    print(f"\nrebuild: {applied:,} events applied in {rebuild_seconds:.0f} s: {rate:,.0f} events/s (target 30,000)")
    print(f"baseline: reading and decoding the same events without applying them: {baseline:,.0f} events/s")
    print(f"ratio to baseline: {rate / baseline:.2f}; refused: {len(refused)}")
    print(
        f"what-if for {report.halls_compared:,} halls (all {PERIOD} facts replayed, then graded):"
        f" {what_if_seconds:.1f} s (target under 60 s); {report.changed_grades:,} grades would change"
    )
    print(json.dumps({"events_per_second": round(rate), "what_if_seconds": round(what_if_seconds, 1)}))


def main() -> None:
    random.seed(7)
    with tempfile.TemporaryDirectory(prefix="bench-projections-") as data_dir:
        asyncio.run(run(Path(data_dir)))


if __name__ == "__main__":
    main()
