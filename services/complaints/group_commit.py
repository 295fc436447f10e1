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
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

Pending = tuple[Aggregate, "Future[None]"]


class GroupCommitter:
    def __init__(self, application: Application[Any], max_batch: int = 64) -> None:
        self.application = application
        self.max_batch = max_batch
        self._pending: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_forever, name="group-commit", daemon=True)
        self._writer.start()

    def save(self, aggregate: Aggregate) -> None:
        """Blocks until the aggregate's events are committed; raises what saving it raised."""
        done: Future[None] = Future()
        self._pending.put((aggregate, done))
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
            self.application.save(*(aggregate for aggregate, _ in batch))
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
