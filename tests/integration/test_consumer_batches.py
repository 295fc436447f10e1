"""A batch of messages on PostgreSQL: one transaction applies the new events; a refused event is
dead-lettered alone while the rest of its batch is applied; repeats, in the batch or from before,
change nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import asyncpg
import pytest

from devstack.postgres import EmbeddedPostgres
from shared.consumer import Connection, Handling, IdempotentConsumer, Outcome, ReceivedMessage
from shared.contracts import HallRegisteredV1, IntegrationEvent, build_event, encode_event
from shared.database import create_pool
from shared.migrations import CONSUMER, migrate_schema

NOW = datetime(2026, 11, 16, 2, tzinfo=UTC)


class RecordingSink:
    """Stands in for the dead-letter topic, which the stack's tests check on the real broker."""

    def __init__(self) -> None:
        self.refused: list[tuple[int, str]] = []

    async def publish(self, message: ReceivedMessage, reason: str) -> None:
        self.refused.append((message.offset, reason))


async def record_hall(connection: Connection, event: IntegrationEvent) -> None:
    hall = event.payload
    assert isinstance(hall, HallRegisteredV1)
    if hall.name == "refused":
        raise ValueError("this hall is refused")
    await connection.execute("INSERT INTO halls_seen VALUES ($1)", hall.hall_id)


@pytest.fixture
async def pool(postgres: EmbeddedPostgres) -> AsyncIterator[asyncpg.Pool]:
    schema = f"batches_{uuid.uuid4().hex[:12]}"
    pool = await create_pool(postgres.url, schema)
    await migrate_schema(postgres.url, schema, [CONSUMER])
    await pool.execute("CREATE TABLE halls_seen (hall_id text PRIMARY KEY)")
    try:
        yield pool
    finally:
        await pool.close()


def messages(names: Sequence[str], first_offset: int = 0) -> list[ReceivedMessage]:
    def hall(name: str, offset: int) -> bytes:
        payload = HallRegisteredV1(
            hall_id=f"H-{name}", name=name, province="广东", city="深圳", level=1, ownership="self_operated"
        )
        aggregate_id = uuid.uuid5(uuid.NAMESPACE_URL, name)
        return encode_event(
            build_event(payload, source="test", aggregate_id=aggregate_id, aggregate_version=1, occurred_at=NOW)
        )

    return [
        ReceivedMessage("halls", 0, first_offset + offset, None, hall(name, offset))
        for offset, name in enumerate(names)
    ]


async def test_a_refused_event_is_dead_lettered_alone_and_the_rest_of_its_batch_applied(pool: asyncpg.Pool) -> None:
    sink = RecordingSink()
    consumer = IdempotentConsumer(
        name="batches", pool=pool, handling=Handling.one_by_one({"HallRegistered": record_hall}), dead_letters=sink
    )
    await consumer.handle(messages(["a"]))
    batch = [*messages(["b", "refused", "c", "b", "a"], first_offset=1)]
    batch.insert(2, ReceivedMessage("halls", 0, 99, None, b"{not json"))

    outcomes = await consumer.handle(batch)

    assert outcomes == [
        Outcome.APPLIED,
        Outcome.DEAD_LETTERED,  # the refused hall
        Outcome.DEAD_LETTERED,  # not an event at all
        Outcome.APPLIED,
        Outcome.DUPLICATE,  # b, again in the same batch
        Outcome.DUPLICATE,  # a, applied by the batch before
    ]
    assert [offset for offset, _ in sink.refused] == [99, 2]
    assert "this hall is refused" in sink.refused[1][1]
    seen = {row["hall_id"] for row in await pool.fetch("SELECT hall_id FROM halls_seen")}
    assert seen == {"H-a", "H-b", "H-c"}
    inbox = await pool.fetchval("SELECT count(*) FROM consumer_inbox WHERE consumer = 'batches'")
    assert inbox == 3  # the refused event is not marked processed: a fixed handler may take it later
