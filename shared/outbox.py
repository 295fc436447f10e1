"""A service's event store as the relay's outbox: its internal events, turned into published contracts.

Read through the service's asyncpg pool, on its event loop: the relay read through the event store's psycopg
recorder in a thread before, whose Python row handling held the interpreter lock the loop needed too.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

import asyncpg
from eventsourcing.application import Application
from eventsourcing.domain import AggregateEvent, DomainEventProtocol
from eventsourcing.persistence import StoredEvent
from psycopg import sql

from shared.contracts import Contract, build_event, encode_event
from shared.event_store import events_table
from shared.relay import OutgoingMessage

ToContract = Callable[[DomainEventProtocol[uuid.UUID]], Awaitable[Contract | None]]
"""The published form of an internal event, or None if it stays internal; awaited, since it may load what the
event refers to."""


def from_the_event_alone(to_contract: Callable[[DomainEventProtocol[uuid.UUID]], Contract | None]) -> ToContract:
    """A `ToContract` for a conversion that needs nothing but the event."""

    async def converted(domain_event: DomainEventProtocol[uuid.UUID]) -> Contract | None:
        return to_contract(domain_event)

    return converted


class EventStoreOutbox:
    def __init__(
        self, application: Application[uuid.UUID], pool: asyncpg.Pool, to_contract: ToContract, source: str
    ) -> None:
        """`application`: its recorder names the events' table, its mapper decodes them."""
        self.application = application
        self.pool = pool
        self.to_contract = to_contract
        self.source = source
        recorder = application.recorder
        events = events_table(recorder)
        trace_contexts = sql.Identifier(recorder.datastore.schema, "event_trace_contexts")  # type: ignore[attr-defined]
        self._select_after = (
            sql.SQL(
                "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state, t.traceparent"
                " FROM {} e LEFT JOIN {} t USING (originator_id, originator_version)"
                " WHERE e.notification_id > $1 ORDER BY e.notification_id LIMIT $2"
            )
            .format(events, trace_contexts)
            .as_string()
        )
        self._select_newest = sql.SQL("SELECT max(notification_id) FROM {}").format(events).as_string()

    async def read_after(self, position: int, limit: int) -> Sequence[OutgoingMessage]:
        rows = await self.pool.fetch(self._select_after, position, limit)
        return [await self._message(row) for row in rows]

    async def newest_position(self) -> int:
        return int(await self.pool.fetchval(self._select_newest) or 0)

    async def _message(self, row: asyncpg.Record) -> OutgoingMessage:
        notification_id, originator_id, originator_version, topic, state, traceparent = row
        stored = StoredEvent(
            originator_id=originator_id, originator_version=originator_version, topic=topic, state=state
        )
        domain_event = cast(AggregateEvent, self.application.mapper.to_domain_event(stored))
        key = str(originator_id).encode()
        contract = await self.to_contract(domain_event)
        if contract is None:
            return OutgoingMessage(position=notification_id, key=key, value=None)
        event = build_event(
            contract,
            source=self.source,
            aggregate_id=originator_id,
            aggregate_version=originator_version,
            occurred_at=domain_event.timestamp,
        )
        return OutgoingMessage(
            position=notification_id,
            key=key,
            value=encode_event(event),
            headers=[
                ("event_type", contract.event_type.encode()),
                ("schema_version", str(contract.schema_version).encode()),
            ],
            traceparent=traceparent,
        )
