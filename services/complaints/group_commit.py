"""Saves new aggregates from concurrent requests in shared transactions.

The event store serialises writers with a table lock held until commit, so one
transaction per request caps intake at one disk flush per complaint. Requests that
arrive together are saved in one transaction instead; if that transaction is refused
(a version conflict, e.g. two requests with one idempotency key), each is retried on
its own so only the conflicting one fails.

Requests wait for their commit on the event loop, not in a thread of their own: the one
writer thread is the only thread intake needs.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError

from services.complaints.personal_data import DataKey
from shared.tracing import current_traceparent


class EventStore(Protocol):
    def store_trace_contexts(self, traced: Iterable[tuple[DomainEventProtocol[Any], str]]) -> None: ...

    def save_events(self, events: Sequence[DomainEventProtocol[Any]], data_keys: Sequence[DataKey]) -> None:
        """Saves the events and the data keys of the customer data they seal, in one transaction."""
        ...


@dataclass(frozen=True)
class Pending:
    # A request's events, not its aggregates: saving collects an aggregate's pending events,
    # so after a refused batch only the events themselves can be saved again.
    events: Sequence[DomainEventProtocol[Any]]
    data_keys: Sequence[DataKey]
    traceparent: str | None  # of the request: the writer thread has no span of its own
    done: Future[None]


class GroupCommitter:
    def __init__(self, application: EventStore, max_batch: int = 64) -> None:
        self.application = application
        self.max_batch = max_batch
        self._pending: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_forever, name="group-commit", daemon=True)
        self._writer.start()

    async def save(self, *aggregates: Aggregate, data_keys: Sequence[DataKey] = ()) -> None:
        """Returns once the aggregates' events (and `data_keys`) are committed, all or none; raises what saving
        them raised."""
        done: Future[None] = Future()
        events = [event for aggregate in aggregates for event in aggregate.collect_events()]
        self._pending.put(Pending(events, data_keys, current_traceparent(), done))
        await asyncio.wrap_future(done)

    def close(self) -> None:
        self._pending.put(None)
        self._writer.join()

    def _write_forever(self) -> None:
        while (first := self._pending.get()) is not None:
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._pending.put(None)
                    break
                batch.append(item)
            self.application.store_trace_contexts(
                (event, pending.traceparent) for pending in batch if pending.traceparent for event in pending.events
            )
            self._commit(batch)

    def _commit(self, batch: list[Pending]) -> None:
        try:
            self.application.save_events(
                [event for pending in batch for event in pending.events],
                [key for pending in batch for key in pending.data_keys],
            )
        except IntegrityError:
            if len(batch) > 1:
                for pending in batch:
                    self._commit([pending])
                return
            batch[0].done.set_exception(IntegrityError())
        except Exception as error:
            for pending in batch:
                pending.done.set_exception(error)
        else:
            for pending in batch:
                pending.done.set_result(None)
