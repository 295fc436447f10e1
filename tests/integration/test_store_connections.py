"""Statements a service runs on its event store's connections itself wait for a busy pool as eventsourcing's own
reads and writes do, rather than failing (a 503) after one short wait."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from eventsourcing.persistence import OperationalError
from eventsourcing.postgres import PostgresDatastore

from devstack.postgres import EmbeddedPostgres
from shared.application import ServiceApplication, retried_while_unavailable
from shared.settings import ServiceSettings
from tests.integration.harness import wait_until


def timed_out_requests(datastore: PostgresDatastore) -> int:
    return int(datastore.pool.get_stats().get("requests_errors", 0))


def test_a_statement_of_the_service_waits_out_a_busy_pool(postgres: EmbeddedPostgres) -> None:
    settings = ServiceSettings(database_url=postgres.url, event_store_pool_size=1, event_store_max_overflow=0)
    application = ServiceApplication(settings.eventsourcing_env("public"))
    datastore = application.recorder.datastore  # type: ignore[attr-defined]

    def one() -> int:
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT 1 AS one")
            row = cursor.fetchone()
            return int(row["one"]) if row else 0

    held, release = threading.Event(), threading.Event()

    def hold_the_only_connection(until: Callable[[], bool]) -> None:
        with datastore.get_connection():
            held.set()
            wait_until(until)

    holder = threading.Thread(target=hold_the_only_connection, args=(release.is_set,))
    holder.start()
    assert held.wait(10), "the holder never took the connection"
    with pytest.raises(OperationalError):
        one()  # one wait, then the request fails
    release.set()
    holder.join(10)

    held.clear()
    refused_so_far = timed_out_requests(datastore)
    # Released once the retried statement's first wait has timed out: only a retry can then succeed.
    holder = threading.Thread(
        target=hold_the_only_connection, args=(lambda: timed_out_requests(datastore) > refused_so_far,)
    )
    holder.start()
    assert held.wait(10), "the holder never took the connection"
    assert retried_while_unavailable(one)() == 1
    holder.join(10)
    application.close()
