"""Rebuild every read model from zero, beside the live one, and say whether the two are identical.

The rebuild reads every topic from its first offset up to its end when the rebuild began,
applies the same handlers into a schema of its own, then compares each table row by row
with the live schema. Run it when little is arriving: events that reach the live models
after the rebuild took its end offsets show up as differences.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from services.projections import complaints, scores, timeline
from services.projections.main import CONSUMER_NAME, SCHEMA, handlers
from shared.consumer import Connection, IdempotentConsumer, ReceivedMessage
from shared.contracts import InvalidEvent, decode_event
from shared.database import create_pool
from shared.streaming import end_offsets
from shared.topics import COMPLAINTS_EVENTS, ESCALATION_EVENTS, SCORING_EVENTS

REBUILD_SCHEMA = "projections_rebuild"
TOPICS = (COMPLAINTS_EVENTS, ESCALATION_EVENTS, SCORING_EVENTS)
# Every read model, with the columns that identify a row in the comparison's report.
READ_MODELS = {
    "halls": "hall_id",
    "complaint_summaries": "complaint_id",
    "timelines": "event_id",
    "timeline_halls": "aggregate_id",
    "score_changes": "event_id",
}


@dataclass
class TableComparison:
    table: str
    live_rows: int
    rebuilt_rows: int
    only_live: list[str] = field(default_factory=list)  # keys of rows that differ or are missing, a few
    only_rebuilt: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.only_live and not self.only_rebuilt


@dataclass
class RebuildReport:
    events: int
    seconds: float
    refused: list[str]
    tables: list[TableComparison]

    @property
    def identical(self) -> bool:
        return all(table.identical for table in self.tables)

    def lines(self) -> list[str]:
        rate = self.events / self.seconds if self.seconds else 0.0
        lines = [f"rebuilt from {self.events:,} events in {self.seconds:.1f} s ({rate:,.0f} events/s)"]
        lines += [f"refused: {reason}" for reason in self.refused]
        for table in self.tables:
            verdict = "identical" if table.identical else "DIFFERENT"
            lines.append(f"{table.table}: {verdict} (live {table.live_rows:,} rows, rebuilt {table.rebuilt_rows:,})")
            lines += [f"  only live: {key}" for key in table.only_live]
            lines += [f"  only rebuilt: {key}" for key in table.only_rebuilt]
        lines.append("IDENTICAL" if self.identical else "DIFFERENT")
        return lines


async def rebuild(
    database_url: str, bootstrap_servers: str, keep: bool = False, batch_size: int = 2000
) -> RebuildReport:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {REBUILD_SCHEMA} CASCADE")
    finally:
        await connection.close()
    shadow = await create_pool(database_url, REBUILD_SCHEMA, max_size=2)
    try:
        await timeline.create_tables(shadow)
        await complaints.create_tables(shadow)
        await scores.create_tables(shadow)
        consumer = IdempotentConsumer(name=CONSUMER_NAME, pool=shadow, handlers=handlers(), dead_letters=_Refusals())
        await consumer.create_tables()
        started = time.perf_counter()
        events, refused = await _replay(consumer, shadow, bootstrap_servers, batch_size)
        seconds = time.perf_counter() - started
        tables = [await _compare(shadow, table, key) for table, key in READ_MODELS.items()]
        return RebuildReport(events, seconds, refused, tables)
    finally:
        if not keep:
            await shadow.execute(f"DROP SCHEMA {REBUILD_SCHEMA} CASCADE")
        await shadow.close()


async def _replay(
    consumer: IdempotentConsumer, shadow: asyncpg.Pool, bootstrap_servers: str, batch_size: int
) -> tuple[int, list[str]]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await reader.start()
    events = 0
    refused: list[str] = []
    try:
        partitions = [TopicPartition(t, p) for t in TOPICS for p in reader.partitions_for_topic(t) or ()]
        ends = {tp: end for tp, end in (await end_offsets(bootstrap_servers, partitions)).items() if end > 0}
        reader.assign(list(ends))
        await reader.seek_to_beginning(*ends)
        while ends:
            batches = await reader.getmany(timeout_ms=1000, max_records=batch_size)
            records = [r for tp, batch in batches.items() for r in batch if r.offset < ends.get(tp, 0)]
            async with shadow.acquire() as connection, connection.transaction():
                for record in records:
                    reason = await _apply(consumer, connection, record)
                    if reason:
                        refused.append(f"{record.topic}[{record.partition}]@{record.offset}: {reason}")
            events += len(records)
            for tp in list(ends):
                if await reader.position(tp) >= ends[tp]:
                    del ends[tp]
                    reader.pause(tp)
    finally:
        await reader.stop()
    return events, refused


async def _apply(consumer: IdempotentConsumer, connection: Connection, record: ConsumerRecord[bytes, bytes]) -> str:
    """Applies one record in a savepoint; returns why it was refused, or an empty string."""
    try:
        event = decode_event(record.value)
    except InvalidEvent as invalid:
        return str(invalid)
    handler = consumer.handlers.get(event.event_type)
    if handler is None:
        return ""
    try:
        async with connection.transaction():
            await consumer.apply_within(connection, handler, event)
    except Exception as error:  # the live consumer dead-letters these too
        return f"handler error: {type(error).__name__}: {error}"
    return ""


async def _compare(shadow: asyncpg.Pool, table: str, key: str) -> TableComparison:
    live_rows = await shadow.fetchval(f"SELECT count(*) FROM {SCHEMA}.{table}")  # noqa: S608 - names are constants
    rebuilt_rows = await shadow.fetchval(f"SELECT count(*) FROM {REBUILD_SCHEMA}.{table}")  # noqa: S608

    async def differing(first: str, second: str) -> list[str]:
        rows = await shadow.fetch(
            f"SELECT {key}::text AS key FROM (SELECT * FROM {first}.{table} EXCEPT SELECT * FROM {second}.{table}) d"  # noqa: S608
            " ORDER BY 1 LIMIT 10"
        )
        return [row["key"] for row in rows]

    return TableComparison(
        table,
        live_rows,
        rebuilt_rows,
        await differing(SCHEMA, REBUILD_SCHEMA),
        await differing(REBUILD_SCHEMA, SCHEMA),
    )


class _Refusals:
    """Never called: the rebuild applies events itself and reports refusals instead of dead-lettering them."""

    async def publish(self, message: ReceivedMessage, reason: str) -> None:
        raise AssertionError(f"unexpected dead letter during a rebuild: {reason}")
