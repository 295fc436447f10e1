"""What every service's event-sourced application shares."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import ParamSpec, TypeVar

from eventsourcing.application import Application
from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import PostgresRecorder
from eventsourcing.utils import retry

Params = ParamSpec("Params")
Result = TypeVar("Result")

# eventsourcing retries each read and write 10 times, each first waiting this long for a pooled
# connection. Its default, 30 s, held a request for minutes once the database went down and the
# pool had dropped its connections; with 0.3 s the caller has its 503 within 5 s. Under load,
# requests beyond the pool's connections also get a 503 after those 5 s: they are shed, not queued.
CONNECTION_WAIT_SECONDS = 0.3


def retried_while_unavailable(statements: Callable[Params, Result]) -> Callable[Params, Result]:
    """Statements a service runs on its event store's connections itself, given the retries eventsourcing gives
    its own: with one wait of CONNECTION_WAIT_SECONDS for a connection, a request found the pool busy while it
    opened another and answered 503. Only for statements that may run twice: each attempt is a new transaction."""
    retrying: Callable[Params, Result] = retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)(
        statements
    )
    return retrying


class ServiceApplication(Application[uuid.UUID]):
    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(env)
        if isinstance(self.recorder, PostgresRecorder):  # unit tests run in memory
            self.recorder.datastore.pool.timeout = CONNECTION_WAIT_SECONDS
