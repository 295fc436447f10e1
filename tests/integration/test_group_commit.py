"""Group commit on the real event store: a refused batch costs only the conflicting request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError

from devstack.postgres import EmbeddedPostgres
from services.complaints.domain import Hall, hall_aggregate_id
from services.complaints.group_commit import GroupCommitter
from services.complaints.personal_data import DataKey
from shared.settings import ServiceSettings
from shared.tracing import StoresTraceContext
from tests.integration.harness import wait_until


class Halls(StoresTraceContext):
    name = "groupcommit"

    def save_events(self, events: Sequence[DomainEventProtocol[Any]], data_keys: Sequence[DataKey]) -> None:
        assert not data_keys, "halls have no customer data"
        self.save(*events)


def lock_waiters(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'groupcommit_events'::regclass"
        ).fetchone()
    return int(row[0]) if row else 0


def hall(code: str) -> Hall:
    return Hall(hall_code=code, name=code, province="广东", city="深圳", level=2, ownership="partner")


def test_a_conflict_in_a_batch_fails_only_its_own_request(postgres: EmbeddedPostgres) -> None:
    application = Halls(ServiceSettings(database_url=postgres.url).eventsourcing_env("public"))
    committer = GroupCommitter(application)
    outcomes: dict[str, str] = {}

    def save(label: str, code: str) -> None:
        try:
            asyncio.run(committer.save(hall(code)))  # each request thread waits on a loop of its own
            outcomes[label] = "saved"
        except IntegrityError:
            outcomes[label] = "conflict"

    # Hold the writers' table lock so that the requests below queue up into one batch.
    with psycopg.connect(postgres.url, autocommit=False) as blocker:
        blocker.execute("LOCK TABLE groupcommit_events IN EXCLUSIVE MODE")
        first = threading.Thread(target=save, args=("first", "H-A"))
        first.start()
        wait_until(lambda: lock_waiters(postgres.url) == 1)  # the first batch waits for the lock
        queued = [
            threading.Thread(target=save, args=(label, code))
            for label, code in (("b", "H-B"), ("b-again", "H-B"), ("c", "H-C"))
        ]
        for thread in queued:
            thread.start()
        wait_until(lambda: committer._pending.qsize() == len(queued))  # the next batch, queued behind it
        blocker.commit()
    for thread in (first, *queued):
        thread.join(10)
    committer.close()

    assert outcomes["first"] == outcomes["c"] == "saved"
    assert sorted((outcomes["b"], outcomes["b-again"])) == ["conflict", "saved"]
    for code in ("H-A", "H-B", "H-C"):
        assert application.repository.get(hall_aggregate_id(code)).hall_code == code
    application.close()
