"""Saves new complaints from concurrent requests in shared transactions.

The event store serialises writers with a table lock held until commit, so one
transaction per request caps intake at one disk flush per complaint. Requests that
arrive while a commit is under way are saved together in the next one; if that transaction is
refused (a version conflict, e.g. two requests with one idempotency key), each is retried on
its own so only the conflicting one fails.

The commits run on the event loop, through asyncpg. They ran in a writer thread through the
event store's psycopg pipeline before: under load that thread was 98% busy, 12 ms per commit
of 8 complaints, most of it waiting for the interpreter lock that the loop held, and intake
could go no faster.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Mapper
from psycopg import sql

from services.complaints.batching import Batched
from services.complaints.personal_data import DataKey, InMemoryDataKeys
from services.complaints.repositories import insert_data_keys
from shared.event_store import LoopInserts, events_table
from shared.tracing import store_trace_contexts_on, traced_traceparent


@dataclass(frozen=True)
class Saving:
    # A request's events, not its aggregates: saving collects an aggregate's pending events,
    # so after a refused batch only the events themselves can be saved again.
    events: Sequence[DomainEventProtocol[Any]]
    data_keys: Sequence[DataKey]
    traceparent: str | None  # of the request: the commit runs in a task of its own


class BatchStore(Protocol):
    async def commit(self, batch: Sequence[Saving]) -> None:
        """Commits the events and data keys of every saving in one transaction, all or none, and keeps each
        request's trace context for its events; raises IntegrityError if an event's version or a data key
        is taken."""
        ...

    async def stored_among(self, aggregate_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Those of the aggregates with events committed."""
        ...


class GroupCommitter:
    def __init__(self, store: BatchStore, max_batch: int = 64) -> None:
        self.store = store
        self._batches = Batched(self._commit, max_batch)
        self._stored_lookups = Batched(self._stored, max_batch)

    async def save(self, *aggregates: Aggregate, data_keys: Sequence[DataKey] = ()) -> None:
        """Returns once the aggregates' events (and `data_keys`) are committed, all or none; raises what saving
        them raised."""
        events = [event for aggregate in aggregates for event in aggregate.collect_events()]
        if (failure := await self._batches(Saving(events, data_keys, traced_traceparent()))) is not None:
            raise failure

    async def is_stored(self, aggregate_id: uuid.UUID) -> bool:
        """Whether the aggregate has events committed: a registration with an idempotency key asks, and
        concurrent requests' questions share one query."""
        return await self._stored_lookups(aggregate_id)

    async def committed(self) -> None:
        """Returns once every saving under way is committed or refused."""
        await self._batches.idle()

    @property
    def waiting(self) -> int:
        """Savings queued behind the commit under way."""
        return self._batches.waiting

    async def _commit(self, batch: Sequence[Saving]) -> list[Exception | None]:
        """What each saving raised, None for each committed; what the store raised for the whole batch, raised."""
        try:
            await self.store.commit(batch)
        except IntegrityError as refused:
            if len(batch) == 1:
                return [refused]
            return [await self._commit_alone(saving) for saving in batch]
        return [None for _ in batch]

    async def _stored(self, aggregate_ids: Sequence[uuid.UUID]) -> list[bool]:
        stored = await self.store.stored_among(aggregate_ids)
        return [aggregate_id in stored for aggregate_id in aggregate_ids]

    async def _commit_alone(self, saving: Saving) -> Exception | None:
        try:
            return (await self._commit([saving]))[0]
        except Exception as error:
            return error


class PostgresBatches:
    """Commits through the service's asyncpg pool, in the event store's own statements."""

    def __init__(self, application: Application[Any], pool: asyncpg.Pool) -> None:
        """`pool`: the service's, whose search path is the event store's schema."""
        self._mapper: Mapper[Any] = application.mapper
        self._events = LoopInserts(application.recorder)  # type: ignore[arg-type]
        self._schema = application.recorder.datastore.schema  # type: ignore[attr-defined]
        self._pool = pool
        self._select_stored = (
            sql.SQL("SELECT DISTINCT originator_id FROM {} WHERE originator_id = ANY($1::uuid[])")
            .format(events_table(application.recorder))
            .as_string()
        )

    async def stored_among(self, aggregate_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        rows = await self._pool.fetch(self._select_stored, aggregate_ids)
        return {row["originator_id"] for row in rows}

    async def commit(self, batch: Sequence[Saving]) -> None:
        stored = [self._mapper.to_stored_event(event) for saving in batch for event in saving.events]
        traced = [(event, saving.traceparent) for saving in batch if saving.traceparent for event in saving.events]
        async with self._pool.acquire() as connection:
            await store_trace_contexts_on(connection, self._schema, traced)  # first: the relay, woken, finds them
            try:
                async with connection.transaction():
                    await insert_data_keys(connection, [key for saving in batch for key in saving.data_keys])
                    await self._events.insert(connection, stored)
            except asyncpg.UniqueViolationError as conflict:
                raise IntegrityError(str(conflict)) from conflict


class InMemoryBatches:
    """For the use-case tests: through the application's own (in-memory) event store."""

    def __init__(self, application: Application[Any], data_keys: InMemoryDataKeys) -> None:
        self._application = application
        self._data_keys = data_keys

    async def commit(self, batch: Sequence[Saving]) -> None:
        self._data_keys.add([key for saving in batch for key in saving.data_keys])  # first: it may refuse a number
        self._application.save(*(event for saving in batch for event in saving.events))

    async def stored_among(self, aggregate_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return {aggregate_id for aggregate_id in aggregate_ids if aggregate_id in self._application.repository}
