"""At-least-once delivery, exactly-once effects.

Messages come in batches. Each is decoded against the contracts; one that is malformed, unknown or
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
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import eventsourcing.persistence
from opentelemetry import trace

from shared.clock import Clock, system_clock
from shared.contracts import IntegrationEvent, InvalidEvent, decode_event
from shared.database import Connection as Connection  # re-exported: the handlers take it
from shared.metrics import CONSUMED, CONSUMER_DELAY
from shared.tracing import Headers, context_from_headers, traceparent_of

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

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


@dataclass(frozen=True)
class Delivery:
    """An event to apply, with the trace context of its consume span: what the events it causes carry on."""

    event: IntegrationEvent
    traceparent: str | None


# Applies a batch of new events, in stream order, in the transaction that records them as processed.
BatchHandler = Callable[[Connection, Sequence[Delivery]], Awaitable[None]]


@dataclass(frozen=True)
class Handling:
    """The event types a consumer takes, and how it applies a batch of them."""

    event_types: frozenset[str]
    apply: BatchHandler

    @classmethod
    def one_by_one(cls, handlers: Mapping[str, Handler]) -> Handling:
        """Each event applied with its own handler."""

        async def apply(connection: Connection, deliveries: Sequence[Delivery]) -> None:
            for delivery in deliveries:
                await handlers[delivery.event.event_type](connection, delivery.event)

        return cls(frozenset(handlers), apply)


@dataclass
class _Item:
    message: ReceivedMessage
    delivery: Delivery
    span: trace.Span


class IdempotentConsumer:
    """Applies messages a batch at a time: one transaction records the batch's events in the inbox and
    applies the new ones. Should the handler refuse a batch, its events are applied again one at a time,
    so that only the refused one is dead-lettered."""

    def __init__(
        self,
        *,
        name: str,
        pool: asyncpg.Pool,
        handling: Handling,
        dead_letters: DeadLetterSink,
        retry_delay_seconds: float = 1.0,
        clock: Clock = system_clock,
    ) -> None:
        self.name = name
        self.pool = pool
        self.handling = handling
        self.dead_letters = dead_letters
        self.retry_delay_seconds = retry_delay_seconds
        self.clock = clock

    async def handle(self, messages: Sequence[ReceivedMessage]) -> list[Outcome]:
        """The outcome of each message, in order."""
        outcomes: dict[int, Outcome] = {}
        items: dict[int, _Item] = {}
        first_of: dict[uuid.UUID, int] = {}
        for index, message in enumerate(messages):
            try:
                event = decode_event(message.value)
            except InvalidEvent as invalid:
                outcomes[index] = await self._dead_letter(message, str(invalid))
                continue
            if event.event_type not in self.handling.event_types:
                outcomes[index] = Outcome.IGNORED
            elif event.envelope.event_id in first_of:  # delivered twice in one batch
                outcomes[index] = Outcome.DUPLICATE
            else:
                first_of[event.envelope.event_id] = index
                span = tracer.start_span(
                    f"process {message.topic}",
                    context=context_from_headers(message.headers),
                    kind=trace.SpanKind.CONSUMER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.operation.name": "process",
                        "messaging.operation.type": "process",
                        "messaging.destination.name": message.topic,
                        "messaging.destination.partition.id": str(message.partition),
                        "messaging.kafka.offset": message.offset,
                        "messaging.consumer.group.name": self.name,
                        "messaging.message.id": str(event.envelope.event_id),
                        "cloudevents.event_type": event.event_type,
                    },
                )
                items[index] = _Item(message, Delivery(event, traceparent_of(span)), span)
        if items:
            outcomes.update(zip(items, await self._apply(list(items.values())), strict=True))
        now = self.clock()
        for index, item in items.items():
            item.span.set_attribute("outcome", outcomes[index].value)
            item.span.end()
            if outcomes[index] is Outcome.APPLIED:
                delay = now - item.delivery.event.envelope.occurred_at
                CONSUMER_DELAY.labels(self.name).observe(max(delay.total_seconds(), 0.0))
        ordered = [outcomes[index] for index in range(len(messages))]
        for outcome in ordered:
            CONSUMED.labels(self.name, outcome.value).inc()
        return ordered

    async def _apply(self, items: list[_Item]) -> list[Outcome]:
        while True:
            try:
                return await self._apply_once(items)
            except TRANSIENT_ERRORS:
                logger.warning("%s: database unavailable; retrying a batch of %d events", self.name, len(items))
                await asyncio.sleep(self.retry_delay_seconds)
            except Exception as refused:
                if len(items) > 1:
                    return [outcome for item in items for outcome in await self._apply([item])]
                [item] = items
                logger.exception("%s: handler refused event %s", self.name, item.delivery.event.envelope.event_id)
                return [await self._dead_letter(item.message, f"handler error: {type(refused).__name__}: {refused}")]

    async def _apply_once(self, items: list[_Item]) -> list[Outcome]:
        async with self.pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                "INSERT INTO consumer_inbox (consumer, event_id) SELECT $1, unnest($2::uuid[])"
                " ON CONFLICT DO NOTHING RETURNING event_id",
                self.name,
                [item.delivery.event.envelope.event_id for item in items],
            )
            first_time = {row["event_id"] for row in rows}
            new = [item.delivery for item in items if item.delivery.event.envelope.event_id in first_time]
            if new:
                await self.handling.apply(connection, new)
        return [
            Outcome.APPLIED if item.delivery.event.envelope.event_id in first_time else Outcome.DUPLICATE
            for item in items
        ]

    async def _dead_letter(self, message: ReceivedMessage, reason: str) -> Outcome:
        logger.warning(
            "%s: dead-lettering %s[%s]@%s: %s", self.name, message.topic, message.partition, message.offset, reason
        )
        await self.dead_letters.publish(message, reason)
        return Outcome.DEAD_LETTERED
