"""Rebuild every read model from zero, beside the live one, and say whether the two are identical.

The rebuild reads every topic from its first offset up to its end when the rebuild began,
applies the same handlers into a schema of its own, then compares each table row by row
with the live schema. Run it when little is arriving: events that reach the live models
after the rebuild took its end offsets show up as differences.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from typing import cast

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from services.projections.main import MIGRATIONS, SCHEMA, handlers
from services.projections.statements import Statements
from shared.consumer import Connection, Handler
from shared.contracts import IntegrationEvent, InvalidEvent, decode_event
from shared.database import create_pool
from shared.garbage import CYCLE_COLLECTION_THRESHOLD
from shared.kafka_auth import client_options
from shared.migrations import migrate_schema
from shared.streaming import end_offsets, topic_partitions
from shared.topics import COMPLAINTS_EVENTS, ESCALATION_EVENTS, SCORING_EVENTS

REBUILD_SCHEMA = "projections_rebuild"
WORKERS = os.cpu_count() or 1
TOPICS = (COMPLAINTS_EVENTS, ESCALATION_EVENTS, SCORING_EVENTS)
# Every read model, with the columns that identify a row in the comparison's report.
READ_MODELS = {
    "halls": "hall_id",
    "complaint_summaries": "complaint_id",
    "timelines": "event_id",
    "timeline_halls": "aggregate_id",
    "timeline_hand_offs": "aggregate_id",
    "score_changes": "event_id",
    "sla_clock_stops": "event_id",
    "inspection_summaries": "inspection_id",
    "order_summaries": "order_id",
    "queue_clocks": "subject_id::text || '/' || clock",
    "incidents": "incident_id",
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
    database_url: str,
    bootstrap_servers: str,
    keep: bool = False,
    batch_size: int = 5000,
    progress: Progress | None = None,
) -> RebuildReport:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {REBUILD_SCHEMA} CASCADE")
    finally:
        await connection.close()
    shadow = await create_pool(database_url, REBUILD_SCHEMA, max_size=2)
    try:
        await migrate_schema(database_url, REBUILD_SCHEMA, MIGRATIONS)
        started = time.perf_counter()
        events, refused = await replay(database_url, REBUILD_SCHEMA, bootstrap_servers, batch_size, progress=progress)
        seconds = time.perf_counter() - started
        tables = [await _compare(shadow, table, key) for table, key in READ_MODELS.items()]
        return RebuildReport(events, seconds, refused, tables)
    finally:
        if not keep:
            await shadow.execute(f"DROP SCHEMA {REBUILD_SCHEMA} CASCADE")
        await shadow.close()


Work = list[tuple[ConsumerRecord[bytes, bytes], IntegrationEvent, Handler]]


class _Applier:
    """Applies records with the live handlers, a batch per transaction, dropping repeated events in memory."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self.handlers = handlers
        self.seen: set[uuid.UUID] = set()
        self.refused: list[str] = []

    async def prepare(self, records: list[ConsumerRecord[bytes, bytes]]) -> tuple[Work, Statements]:
        """Decodes a batch and collects its statements; no database work yet."""
        work: Work = []
        statements = Statements()
        for record in records:
            try:
                event = decode_event(record.value)
            except InvalidEvent as invalid:
                self._refuse(record, str(invalid))
                continue
            handler = self.handlers.get(event.event_type)
            if handler is not None and event.envelope.event_id not in self.seen:
                self.seen.add(event.envelope.event_id)
                work.append((record, event, handler))
                await handler(cast(Connection, statements), event)
        return work, statements

    async def apply(self, connection: asyncpg.Connection, work: Work, statements: Statements) -> None:
        try:
            async with connection.transaction():
                await statements.run(connection)
        except Exception:  # one at a time, to find which ones the live consumer would have dead-lettered
            for record, event, handler in work:
                try:
                    async with connection.transaction():
                        await handler(cast(Connection, connection), event)
                except Exception as error:
                    self._refuse(record, f"handler error: {type(error).__name__}: {error}")

    def _refuse(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        self.refused.append(f"{record.topic}[{record.partition}]@{record.offset}: {reason}")


Progress = Callable[[int, int], None]  # events applied so far, of how many


async def replay(
    database_url: str,
    schema: str,
    bootstrap_servers: str,
    batch_size: int = 5000,
    workers: int = WORKERS,
    progress: Progress | None = None,
) -> tuple[int, list[str]]:
    """Applies every message of the topics, up to their ends now, to the read models in `schema`.

    Partitions are shared out among worker processes: a complaint's (or order's, or
    scorecard's) events all sit in one partition, and a read model depends only on the order
    of one aggregate's events, so partitions can be applied side by side.
    """
    partitions = await topic_partitions(bootstrap_servers, TOPICS)
    ends = {tp: end for tp, end in (await end_offsets(bootstrap_servers, partitions)).items() if end > 0}
    shares = _share_out(ends, workers)
    deferred_indexes = await _prepare_for_loading(database_url, schema)
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    applied = context.Value("q", 0)  # what the workers have read, for `progress`
    total = sum(ends.values())
    with ProcessPoolExecutor(
        len(shares) or 1, mp_context=context, initializer=_count_into, initargs=(applied,)
    ) as processes:
        running = asyncio.gather(
            *(
                loop.run_in_executor(
                    processes, _replay_share, database_url, schema, bootstrap_servers, share, batch_size
                )
                for share in shares
            )
        )
        while progress is not None and not running.done():
            progress(applied.value, total)
            await asyncio.wait([running], timeout=0.5)
        results = await running
        if progress is not None:
            progress(applied.value, total)
    connection = await asyncpg.connect(database_url)
    try:
        for definition in deferred_indexes:
            await connection.execute(definition)
    finally:
        await connection.close()
    return sum(events for events, _ in results), [reason for _, refused in results for reason in refused]


async def _prepare_for_loading(database_url: str, schema: str) -> list[str]:
    """Makes the schema's tables fast to fill: unlogged, since a rebuild that crashes is simply run again,
    and without the indexes no constraint needs, which are built once at the end (their definitions returned).
    """
    connection = await asyncpg.connect(database_url)
    try:
        for table in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema):
            await connection.execute(f'ALTER TABLE "{schema}"."{table["tablename"]}" SET UNLOGGED')
        rows = await connection.fetch(
            """
            SELECT i.indexname, i.indexdef FROM pg_indexes i
            JOIN pg_class c ON c.relname = i.indexname
            JOIN pg_index x ON x.indexrelid = c.oid
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = i.schemaname
            WHERE i.schemaname = $1 AND NOT x.indisunique
            """,
            schema,
        )
        for row in rows:
            await connection.execute(f'DROP INDEX "{schema}"."{row["indexname"]}"')
    finally:
        await connection.close()
    return [row["indexdef"] for row in rows]


def _share_out(ends: dict[TopicPartition, int], workers: int) -> list[dict[TopicPartition, int]]:
    """Each topic's partitions, largest first, to the worker with the least of that topic: applying
    an event costs more on some topics than on others, so every worker gets its part of each."""
    shares: list[dict[TopicPartition, int]] = [{} for _ in range(min(workers, len(ends)))]
    for partition, end in sorted(ends.items(), key=lambda item: (item[0].topic, -item[1])):

        def load(share: dict[TopicPartition, int], topic: str = partition.topic) -> tuple[int, int]:
            return sum(n for tp, n in share.items() if tp.topic == topic), sum(share.values())

        min(shares, key=load)[partition] = end
    return shares


_applied: Synchronized[int] | None = None  # in a worker: the count `replay` reports progress from


def _count_into(applied: Synchronized[int]) -> None:
    global _applied
    _applied = applied


def _replay_share(
    database_url: str, schema: str, bootstrap_servers: str, ends: dict[TopicPartition, int], batch_size: int
) -> tuple[int, list[str]]:
    # A replay makes millions of short-lived objects, nearly none in cycles: at CPython's default threshold
    # the cycle collector took more than half the worker's time.
    gc.set_threshold(CYCLE_COLLECTION_THRESHOLD)
    return asyncio.run(_replay_partitions(database_url, schema, bootstrap_servers, ends, batch_size))


async def _replay_partitions(
    database_url: str, schema: str, bootstrap_servers: str, ends: dict[TopicPartition, int], batch_size: int
) -> tuple[int, list[str]]:
    """While the database applies one batch, the next is fetched and decoded."""
    applier = _Applier(handlers())
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False, **client_options()
    )
    # Should the rebuild crash, it is simply run again: its commits need not wait for the disk.
    connection = await asyncpg.connect(
        database_url, server_settings={"search_path": schema, "synchronous_commit": "off"}
    )
    await reader.start()
    events = 0
    applying: asyncio.Task[None] | None = None
    try:
        reader.assign(list(ends))
        await reader.seek_to_beginning(*ends)
        while ends:
            batches = await reader.getmany(timeout_ms=1000, max_records=batch_size)
            records = [r for tp, batch in batches.items() for r in batch if r.offset < ends.get(tp, 0)]
            work, statements = await applier.prepare(records)
            if applying is not None:
                await applying
            applying = asyncio.create_task(applier.apply(connection, work, statements))
            events += len(records)
            if _applied is not None:
                with _applied.get_lock():
                    _applied.value += len(records)
            for tp in list(ends):
                if await reader.position(tp) >= ends[tp]:
                    del ends[tp]
                    reader.pause(tp)
        if applying is not None:
            await applying
    finally:
        if applying is not None and not applying.done():
            applying.cancel()
        await reader.stop()
        await connection.close()
    return events, applier.refused


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
