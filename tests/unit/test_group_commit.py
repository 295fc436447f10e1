"""The group committer's bookkeeping: no request is left waiting on a commit that will never come."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from services.complaints.domain import Hall
from services.complaints.group_commit import GroupCommitter, Saving


class StuckStore:
    """A commit that never returns, as one under way when the service stops."""

    def __init__(self) -> None:
        self.committing = asyncio.Event()

    async def commit(self, batch: Sequence[Saving]) -> None:
        self.committing.set()
        await asyncio.Event().wait()


def hall(code: str) -> Hall:
    return Hall(hall_code=code, name=code, province="广东", city="深圳", level=2, ownership="partner")


async def test_requests_behind_a_cancelled_commit_are_cancelled_not_left_waiting() -> None:
    store = StuckStore()
    committer = GroupCommitter(store)
    first = asyncio.create_task(committer.save(hall("H-A")))
    await store.committing.wait()
    queued = asyncio.create_task(committer.save(hall("H-B")))
    while committer.waiting == 0:
        await asyncio.sleep(0)  # until the second request has queued behind the commit under way

    writer = committer._writing
    assert writer is not None
    writer.cancel()

    _, still_waiting = await asyncio.wait([first, queued], timeout=5)  # a bound: without the fix, for ever

    assert not still_waiting
    assert first.cancelled() and queued.cancelled()
    assert committer.waiting == 0
