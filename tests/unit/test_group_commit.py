"""The group committer's verdicts: a refused batch is tried again saving by saving, so that each request gets
its own outcome, and one committed on its own is never reported as failed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError

from services.complaints.domain import Hall
from services.complaints.group_commit import GroupCommitter, InMemoryBatches, Saving
from services.complaints.personal_data import DataKey, InMemoryDataKeys


def hall(code: str) -> Hall:
    return Hall(hall_code=code, name=code, province="广东", city="深圳", level=2, ownership="partner")


class Store:
    """Holds its first commit until released; refuses every batch with a `refused` aggregate's event, and
    fails outright on a `broken` one's when it comes alone."""

    def __init__(self, refused: set[uuid.UUID], broken: set[uuid.UUID]) -> None:
        self.refused, self.broken = refused, broken
        self.committed: list[uuid.UUID] = []
        self.committing = asyncio.Event()
        self.release = asyncio.Event()

    async def commit(self, batch: Sequence[Saving]) -> None:
        self.committing.set()
        await self.release.wait()
        ids = {event.originator_id for saving in batch for event in saving.events}
        if ids & self.refused:
            raise IntegrityError("version taken")
        if len(batch) == 1 and ids & self.broken:
            raise ConnectionError("database gone")
        self.committed.extend(ids)

    async def stored_among(self, aggregate_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return set(aggregate_ids) & set(self.committed)


async def outcome(saving: asyncio.Task[None]) -> str:
    try:
        await saving
    except IntegrityError:
        return "refused"
    except ConnectionError:
        return "failed"
    return "saved"


async def test_each_saving_of_a_refused_batch_gets_its_own_outcome() -> None:
    first, fine, conflicting, unlucky = (hall(code) for code in ("H-A", "H-B", "H-C", "H-D"))
    store = Store(refused={conflicting.id}, broken={unlucky.id})
    committer = GroupCommitter(store)
    under_way = asyncio.create_task(committer.save(first))
    await store.committing.wait()
    queued = [asyncio.create_task(committer.save(aggregate)) for aggregate in (fine, conflicting, unlucky)]
    while committer.waiting < len(queued):
        await asyncio.sleep(0)  # until all three have queued behind the commit under way
    store.release.set()

    outcomes = [await outcome(task) for task in (under_way, *queued)]
    await committer.committed()

    assert outcomes == ["saved", "saved", "refused", "failed"]
    assert store.committed == [first.id, fine.id]
    assert committer.waiting == 0
    assert [await committer.is_stored(aggregate.id) for aggregate in (first, conflicting)] == [True, False]


async def test_the_in_memory_store_refuses_a_number_given_already_as_the_database_does() -> None:
    keys = InMemoryDataKeys()
    application: Application[uuid.UUID] = Application({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    committer = GroupCommitter(InMemoryBatches(application, keys))
    first, second = hall("H-A"), hall("H-B")

    def key(subject: uuid.UUID, number: str) -> DataKey:
        return DataKey(subject, b"wrapped", b"digest", datetime(2026, 12, 3, 2, tzinfo=UTC), number, "H-A")

    await committer.save(first, data_keys=[key(first.id, "C20261203-000001-AAAAA")])
    refused = asyncio.create_task(committer.save(second, data_keys=[key(second.id, "C20261203-000001-AAAAA")]))

    assert await outcome(refused) == "refused"
    assert not await committer.is_stored(second.id)
    assert keys.wrapped(second.id) is None
    assert keys.numbered("C20261203-000001-AAAAA") == first.id
