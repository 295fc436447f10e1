"""Saves new aggregates from concurrent requests in shared transactions.

The event store serialises writers with a table lock held until commit, so one
transaction per request caps intake at one disk flush per complaint. Requests that
arrive together are saved in one transaction instead; if that transaction is refused
(a version conflict, e.g. two requests with one idempotency key), each is retried on
its own so only the conflicting one fails.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError

# A request's events, not its aggregate: saving collects an aggregate's pending events,
# so after a refused batch only the events themselves can be saved again.
Pending = tuple[list[DomainEventProtocol[Any]], "Future[None]"]


class GroupCommitter:
    def __init__(self, application: Application[Any], max_batch: int = 64) -> None:
        self.application = application
        self.max_batch = max_batch
        self._pending: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_forever, name="group-commit", daemon=True)
        self._writer.start()

    def save(self, *aggregates: Aggregate) -> None:
        """Blocks until the aggregates' events are committed, all or none; raises what saving them raised."""
        done: Future[None] = Future()
        self._pending.put(([event for aggregate in aggregates for event in aggregate.collect_events()], done))
        done.result()

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
            self._commit(batch)

    def _commit(self, batch: list[Pending]) -> None:
        try:
            self.application.save(*(event for events, _ in batch for event in events))
        except IntegrityError:
            if len(batch) > 1:
                for pending in batch:
                    self._commit([pending])
                return
            batch[0][1].set_exception(IntegrityError())
        except Exception as error:
            for _, done in batch:
                done.set_exception(error)
        else:
            for _, done in batch:
                done.set_result(None)
