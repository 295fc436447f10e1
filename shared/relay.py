"""Publishes a service's committed events to Kafka, in store order.

The event store is the source of truth. The relay reads it after its recorded
position, publishes each event keyed by aggregate id, and advances the position
only once the broker has acknowledged the whole batch on the topic it was sent
to (see `PublishUnconfirmed`). A crash therefore causes
at most a republish, never a loss; consumers drop the duplicates. `rewind` moves
the position back so everything after it is published again (e.g. after the
broker lost its data).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry import trace

from shared.kafka_auth import client_options
from shared.metrics import PUBLISHED, RELAY_LAG, RELAY_PUBLISH_FAILURES
from shared.topic_ids import topic_ids_from
from shared.tracing import context_of, traceparent_header, tracing_enabled

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

TRACE_CONTEXT_RETENTION = timedelta(days=1)
FORGET_TRACE_CONTEXTS_EVERY_SECONDS = 3600.0


@dataclass(frozen=True)
class OutgoingMessage:
    """One stored event; `value` is None for events that are not published."""

    position: int
    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    traceparent: str | None = None  # of the request or message that stored the event, if traced


class Outbox(Protocol):
    async def read_after(self, position: int, limit: int) -> Sequence[OutgoingMessage]:
        """Stored events after `position`, in order."""
        ...

    async def newest_position(self) -> int:
        """The position of the newest stored event (0 if none)."""
        ...


class RelayPositions:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, relay_name: str) -> int:
        position = await self.pool.fetchval("SELECT position FROM relay_positions WHERE relay_name = $1", relay_name)
        return int(position or 0)

    async def advance(self, relay_name: str, expected: int, new: int) -> bool:
        """Compare-and-set, so a concurrent `rewind` is never overwritten."""
        async with self.pool.acquire() as connection, connection.transaction():
            # A position lost in a crash only means republishing what consumers already
            # have, so it need not wait for its own disk flush.
            await connection.execute("SET LOCAL synchronous_commit TO OFF")
            status = await connection.execute(
                """
                INSERT INTO relay_positions AS p (relay_name, position) VALUES ($1, $3)
                ON CONFLICT (relay_name) DO UPDATE SET position = $3
                WHERE p.position = $2
                """,
                relay_name,
                expected,
                new,
            )
        return bool(status.endswith(" 1"))

    async def forget_trace_contexts(self, older_than: timedelta) -> int:
        """Deletes trace contexts stored longer ago than `older_than`; returns how many."""
        status = await self.pool.execute(
            "DELETE FROM event_trace_contexts WHERE stored_at < now() - $1::interval", older_than
        )
        return int(status.split()[-1])

    async def rewind(self, relay_name: str, position: int) -> None:
        await self.pool.execute(
            """
            INSERT INTO relay_positions (relay_name, position) VALUES ($1, $2)
            ON CONFLICT (relay_name) DO UPDATE SET position = $2
            """,
            relay_name,
            position,
        )


class PublishUnconfirmed(Exception):
    """The broker acknowledged a batch, yet its topic is not the one the batch was sent to.

    A broker that has just lost its data may acknowledge messages for a topic it does not have yet
    and not serve them (the local broker does; its next write to the partition fails), so a batch
    counts as published only if its topic kept one id from before the send until after the acks.
    """


class Relay:
    def __init__(
        self,
        *,
        name: str,
        outbox: Outbox,
        positions: RelayPositions,
        bootstrap_servers: str,
        topic: str,
        batch_size: int = 500,
        idle_poll_seconds: float = 1.0,
        linger_seconds: float = 0.02,
    ) -> None:
        self.name = name
        self.outbox = outbox
        self.positions = positions
        self.bootstrap_servers = bootstrap_servers
        self.producer: AIOKafkaProducer | None = None
        self._topic_id: uuid.UUID | None = None  # the producer's topic, as of its last confirmed batch
        self.topic = topic
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self.linger_seconds = linger_seconds
        self._wake = asyncio.Event()
        self._position: int | None = None  # as of this relay's last advance; None: read it from the table
        self._next_forgetting = 0.0

    def wake(self) -> None:
        """Called when new events are committed, to publish without waiting for the poll."""
        self._wake.set()

    async def run(self) -> None:
        """Publishes batch after batch; once a batch comes up short it is caught up, and waits for a commit.

        Between commits it polls, reading the position from the table again: only then can a rewind
        have moved it unseen (while events flow, a rewind makes the next advance fail).
        """
        try:
            while True:
                self._wake.clear()  # from here on, a commit wakes the next round, even one during this batch
                try:
                    published = await self.publish_next_batch()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    RELAY_PUBLISH_FAILURES.labels(self.name).inc()
                    logger.exception("relay %s: publishing failed; retrying", self.name)
                    await self._drop_producer()
                    await asyncio.sleep(1)
                    continue
                if published < self.batch_size:
                    await self._forget_old_trace_contexts()
                    if await self._woken_within_poll():
                        # Commits come one at a time; a moment's wait lets the next batch hold several.
                        await asyncio.sleep(self.linger_seconds)
                    else:
                        self._position = None
        finally:
            await self._drop_producer()
            with contextlib.suppress(KeyError):  # another replica publishes now: no stale lag from this one
                RELAY_LAG.remove(self.name)

    async def publish_next_batch(self) -> int:
        """Publishes one batch; returns how many stored events it covered."""
        position = self._position if self._position is not None else await self.positions.get(self.name)
        batch = await self.outbox.read_after(position, self.batch_size)
        # A short batch is all there is; only behind a full one must the newest position be asked for.
        unpublished = len(batch)
        if unpublished == self.batch_size:
            unpublished = max(await self.outbox.newest_position() - position, unpublished)
        RELAY_LAG.labels(self.name).set(unpublished)
        if not batch:
            return 0
        producer = await self._connected_producer()
        await self._publish(producer, batch)
        if await self.positions.advance(self.name, position, batch[-1].position):
            self._position = batch[-1].position
        else:
            logger.info("relay %s: position moved by a rewind; continuing from there", self.name)
            self._position = None
        RELAY_LAG.labels(self.name).set(unpublished - len(batch))
        return len(batch)

    async def _forget_old_trace_contexts(self) -> None:
        """A trace context is needed only until its event is published. Called once everything is
        published, so a backlog keeps its contexts; this also drops those of saves that failed."""
        if time.monotonic() < self._next_forgetting:
            return
        self._next_forgetting = time.monotonic() + FORGET_TRACE_CONTEXTS_EVERY_SECONDS
        try:
            forgotten = await self.positions.forget_trace_contexts(TRACE_CONTEXT_RETENTION)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            logger.warning("relay %s: old trace contexts not forgotten; trying again later", self.name, exc_info=True)
            return
        if forgotten:
            logger.info("relay %s: forgot %d trace contexts stored over a day ago", self.name, forgotten)

    async def _publish(self, producer: AIOKafkaProducer, batch: Sequence[OutgoingMessage]) -> None:
        sent_to = self._topic_id or await self._topic_id_now(producer)
        deliveries = [await self._send(producer, message) for message in batch if message.value is not None]
        await asyncio.gather(*deliveries)
        if await self._topic_id_now(producer) != sent_to:
            raise PublishUnconfirmed(f"{self.topic} was created anew while a batch was sent to it")
        self._topic_id = sent_to
        PUBLISHED.labels(self.name).inc(len(deliveries))

    async def _topic_id_now(self, producer: AIOKafkaProducer) -> uuid.UUID:
        # Creating a missing topic, as the producer's own metadata requests do where the broker allows it
        topic_id = (await topic_ids_from(producer.client, [self.topic], create_missing=True)).get(self.topic)
        if topic_id is None:
            raise PublishUnconfirmed(f"the broker has no topic {self.topic}")
        return topic_id

    async def _send(self, producer: AIOKafkaProducer, message: OutgoingMessage) -> asyncio.Future[Any]:
        """Queues one message; its span continues the trace the event was stored in."""
        with self._send_span(message.traceparent):
            headers = [*message.headers, *traceparent_header(message.traceparent)]
            delivery: asyncio.Future[Any] = await producer.send(
                self.topic, message.value, key=message.key, headers=headers
            )
            return delivery

    def _send_span(self, traceparent: str | None) -> contextlib.AbstractContextManager[object]:
        if not tracing_enabled():  # a span would record nothing, and still cost each send its context changes
            return contextlib.nullcontext()
        return tracer.start_as_current_span(
            f"send {self.topic}",
            context=context_of(traceparent),
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.name": "send",
                "messaging.operation.type": "send",
                "messaging.destination.name": self.topic,
                "messaging.client.id": self.name,
            },
        )

    async def _connected_producer(self) -> AIOKafkaProducer:
        if self.producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers, acks="all", linger_ms=5, **client_options()
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self.producer = producer
        return self.producer

    async def _drop_producer(self) -> None:
        self._position = None
        if self.producer is not None:
            producer, self.producer, self._topic_id = self.producer, None, None
            await producer.stop()

    async def _woken_within_poll(self) -> bool:
        """Waits for a commit's wake-up, at most one poll interval; whether one came."""
        try:
            await asyncio.wait_for(self._wake.wait(), self.idle_poll_seconds)
        except TimeoutError:
            return False
        return True


async def run_as_leader(pool: asyncpg.Pool, relay: Relay, retry_seconds: float = 2.0) -> None:
    """Runs the relay only while this replica holds its advisory lock, so replicas do not publish twice.

    Should the lock's connection break, another replica may start relaying too; consumers drop
    the duplicates, so that costs only work.
    """
    while True:
        try:
            async with pool.acquire() as connection:
                if await connection.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", relay.name):
                    try:
                        await relay.run()
                    finally:  # the pool does not reset a connection it takes back (see shared/database.py)
                        await connection.execute("SELECT pg_advisory_unlock(hashtext($1))", relay.name)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("relay %s: could not take the relay lock; retrying", relay.name, exc_info=True)
        await asyncio.sleep(retry_seconds)


@contextlib.asynccontextmanager
async def relaying(relay: Relay, pool: asyncpg.Pool, database_url: str, store_name: str) -> AsyncIterator[None]:
    """Runs the relay for the block (on the replica holding its lock), woken by the store's NOTIFY on each commit."""
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(f"{store_name}_events", lambda *_: relay.wake())
    task = asyncio.create_task(run_as_leader(pool, relay), name=f"relay {relay.name}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await listener.close()
