"""At-least-once delivery, exactly-once effects.

Each message is decoded against the contracts; one that is malformed, unknown or
whose handler refuses it goes to the consumer's dead-letter topic with the reason,
and the stream moves on. A valid event's effect and the record that it was
processed are committed in one transaction, so a redelivered event changes nothing.
Failures of the database itself are retried, not dead-lettered: the data was fine.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import asyncpg
import eventsourcing.persistence
from opentelemetry import trace

from shared.clock import Clock, system_clock
from shared.contracts import IntegrationEvent, InvalidEvent, decode_event
from shared.metrics import CONSUMED, CONSUMER_DELAY
from shared.tracing import Headers, context_from_headers

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

INBOX_DDL = """
CREATE TABLE IF NOT EXISTS consumer_inbox (
    consumer text NOT NULL,
    event_id uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
)
"""

if TYPE_CHECKING:
    Connection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:  # not subscriptable at run time
    Connection = asyncpg.pool.PoolConnectionProxy
Handler = Callable[[Connection, IntegrationEvent], Awaitable[None]]


class TransientError(Exception):
    """The event is fine and trying again later may succeed (e.g. concurrent writers kept conflicting)."""


# Errors that say the database is unavailable or busy, not that the event is bad.
TRANSIENT_ERRORS = (
    TransientError,
    eventsourcing.persistence.OperationalError,
    eventsourcing.persistence.InterfaceError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class ReceivedMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


class DeadLetterSink(Protocol):
    """Where refused messages go. `publish` must not return before the broker has them."""

    async def publish(self, message: ReceivedMessage, reason: str) -> None: ...


def dead_letter_record(message: ReceivedMessage, reason: str, consumer: str) -> bytes:
    return json.dumps(
        {
            "consumer": consumer,
            "reason": reason,
            "source_topic": message.topic,
            "source_partition": message.partition,
            "source_offset": message.offset,
            "key": message.key.decode(errors="replace") if message.key else None,
            "value": message.value.decode(errors="replace") if message.value else None,
        }
    ).encode()


class IdempotentConsumer:
    def __init__(
        self,
        *,
        name: str,
        pool: asyncpg.Pool,
        handlers: Mapping[str, Handler],
        dead_letters: DeadLetterSink,
        retry_delay_seconds: float = 1.0,
        clock: Clock = system_clock,
    ) -> None:
        self.name = name
        self.pool = pool
        self.handlers = handlers
        self.dead_letters = dead_letters
        self.retry_delay_seconds = retry_delay_seconds
        self.clock = clock

    async def handle(self, message: ReceivedMessage) -> Outcome:
        outcome = await self._handle(message)
        CONSUMED.labels(self.name, outcome.value).inc()
        return outcome

    async def _handle(self, message: ReceivedMessage) -> Outcome:
        try:
            event = decode_event(message.value)
        except InvalidEvent as invalid:
            return await self._dead_letter(message, str(invalid))
        handler = self.handlers.get(event.event_type)
        if handler is None:
            return Outcome.IGNORED
        with tracer.start_as_current_span(
            f"consume {event.event_type}", context=context_from_headers(message.headers), kind=trace.SpanKind.CONSUMER
        ) as span:
            span.set_attribute("messaging.consumer.group.name", self.name)
            outcome = await self._apply(handler, event, message)
            span.set_attribute("outcome", outcome.value)
        if outcome is Outcome.APPLIED:
            delay = self.clock() - event.envelope.occurred_at
            CONSUMER_DELAY.labels(self.name).observe(max(delay.total_seconds(), 0.0))
        return outcome

    async def _apply(self, handler: Handler, event: IntegrationEvent, message: ReceivedMessage) -> Outcome:
        while True:
            try:
                return await self._apply_once(handler, event)
            except TRANSIENT_ERRORS:
                logger.warning("%s: database unavailable; retrying event %s", self.name, event.envelope.event_id)
                await asyncio.sleep(self.retry_delay_seconds)
            except Exception as refused:
                logger.exception("%s: handler refused event %s", self.name, event.envelope.event_id)
                return await self._dead_letter(message, f"handler error: {type(refused).__name__}: {refused}")

    async def _apply_once(self, handler: Handler, event: IntegrationEvent) -> Outcome:
        async with self.pool.acquire() as connection, connection.transaction():
            first_time = await connection.fetchval(
                "INSERT INTO consumer_inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
                self.name,
                event.envelope.event_id,
            )
            if not first_time:
                return Outcome.DUPLICATE
            await handler(connection, event)
        return Outcome.APPLIED

    async def _dead_letter(self, message: ReceivedMessage, reason: str) -> Outcome:
        logger.warning(
            "%s: dead-lettering %s[%s]@%s: %s", self.name, message.topic, message.partition, message.offset, reason
        )
        await self.dead_letters.publish(message, reason)
        return Outcome.DEAD_LETTERED
