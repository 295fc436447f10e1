"""Group commit on the real event store: a refused batch costs only the conflicting request, and a
request's events and data keys are committed together."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import asyncpg
import pytest_asyncio
from eventsourcing.persistence import IntegrityError

from devstack.postgres import EmbeddedPostgres
from services.complaints.domain import Hall, hall_aggregate_id
from services.complaints.group_commit import GroupCommitter, PostgresBatches
from services.complaints.main import MIGRATIONS
from services.complaints.personal_data import DataKey
from shared.database import create_pool
from shared.migrations import migrate_schema
from shared.settings import ServiceSettings
from shared.tracing import StoresTraceContext
from tests.integration.harness import eventually


class Store(StoresTraceContext):
    name = "complaints"  # its tables as the complaints service's, in a schema of the test's own


def hall(code: str) -> Hall:
    return Hall(hall_code=code, name=code, province="广东", city="深圳", level=2, ownership="partner")


def key_of(code: str) -> DataKey:
    received = datetime(2026, 12, 3, 2, tzinfo=UTC)
    return DataKey(hall_aggregate_id(code), b"wrapped", b"digest", received, f"C-{code}", code)


async def outcome(saving: Awaitable[None]) -> str:
    try:
        await saving
    except IntegrityError:
        return "conflict"
    return "saved"


@dataclass(frozen=True)
class Committing:
    schema: str
    store: Store
    committer: GroupCommitter


@pytest_asyncio.fixture
async def committing(postgres: EmbeddedPostgres) -> AsyncIterator[Committing]:
    """A group committer on an event store of the complaints service's tables, in a schema of its own."""
    schema = f"groupcommit_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(postgres.url, schema)  # first: it creates the schema
    store = await asyncio.to_thread(Store, ServiceSettings(database_url=postgres.url).eventsourcing_env(schema))
    await migrate_schema(postgres.url, schema, MIGRATIONS)
    try:
        yield Committing(schema, store, GroupCommitter(PostgresBatches(store, pool)))
    finally:
        await pool.close()
        store.close()


async def test_a_conflict_in_a_batch_fails_only_its_own_request(
    postgres: EmbeddedPostgres, committing: Committing
) -> None:
    schema, store, committer = committing.schema, committing.store, committing.committer
    blocker = await asyncpg.connect(postgres.url)
    try:
        # Hold the writers' table lock so that the requests below queue up into one batch.
        holding = blocker.transaction()
        await holding.start()
        await blocker.execute(f"LOCK TABLE {schema}.complaints_events IN EXCLUSIVE MODE")

        def saving(code: str) -> asyncio.Task[str]:
            return asyncio.create_task(outcome(committer.save(hall(code), data_keys=[key_of(code)])))

        first = saving("H-A")

        async def first_batch_waits_for_the_lock() -> bool:
            waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = $1::regclass"
            return int(await blocker.fetchval(waiting, f"{schema}.complaints_events")) == 1

        assert await eventually(first_batch_waits_for_the_lock, timeout=10)
        queued = {label: saving(code) for label, code in (("b", "H-B"), ("b-again", "H-B"), ("c", "H-C"))}

        async def queued_behind_it() -> bool:  # the next batch
            return committer.waiting == len(queued)

        assert await eventually(queued_behind_it, timeout=10)
        await holding.commit()
        outcomes = {"first": await first} | {label: await task for label, task in queued.items()}
        await committer.committed()

        assert outcomes["first"] == outcomes["c"] == "saved"
        assert sorted((outcomes["b"], outcomes["b-again"])) == ["conflict", "saved"]
        for code in ("H-A", "H-B", "H-C"):
            assert store.repository.get(hall_aggregate_id(code)).hall_code == code
        subjects = await blocker.fetch(f"SELECT subject FROM {schema}.customer_keys ORDER BY number")  # noqa: S608
        assert [row["subject"] for row in subjects] == [hall_aggregate_id(code) for code in ("H-A", "H-B", "H-C")]
        # What an idempotent registration asks before loading: the saved ones, and not one never saved.
        asked = ("H-A", "H-B", "H-C", "H-NEVER")
        stored = await asyncio.gather(*(committer.is_stored(hall_aggregate_id(code)) for code in asked))
        assert list(stored) == [True, True, True, False]
    finally:
        await blocker.close()


async def test_a_number_given_already_is_refused_and_nothing_of_its_request_stored(committing: Committing) -> None:
    committer = committing.committer
    await committer.save(hall("H-A"), data_keys=[key_of("H-A")])

    given_again = replace(key_of("H-B"), number=key_of("H-A").number)

    assert await outcome(committer.save(hall("H-B"), data_keys=[given_again])) == "conflict"
    assert not await committer.is_stored(hall_aggregate_id("H-B"))
    assert await outcome(committer.save(hall("H-B"), data_keys=[key_of("H-B")])) == "saved"
