"""Batched calls: each item gets its own outcome, those asked for meanwhile share one batch, and a failed or
stopped batch leaves no one waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.complaints.batching import Batched


class HeldSquares:
    """Squares its batches, each held until released, and remembers them."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.looking_up = asyncio.Event()
        self.release = asyncio.Event()

    async def look_up(self, questions: Sequence[int]) -> list[int]:
        self.batches.append(list(questions))
        self.looking_up.set()
        await self.release.wait()
        return [question * question for question in questions]


async def test_questions_asked_during_a_lookup_share_the_next_one_and_each_gets_its_own_answer() -> None:
    squares = HeldSquares()
    lookups = Batched(squares.look_up)
    first = asyncio.create_task(lookups(2))
    await squares.looking_up.wait()
    meanwhile = [asyncio.create_task(lookups(question)) for question in (3, 4, 5)]
    await asyncio.sleep(0)  # they have queued behind the lookup under way
    squares.release.set()

    answers = await asyncio.gather(first, *meanwhile)

    assert answers == [4, 9, 16, 25]
    assert squares.batches == [[2], [3, 4, 5]]


async def test_a_batch_is_at_most_max_batch_questions() -> None:
    squares = HeldSquares()
    lookups = Batched(squares.look_up, max_batch=2)
    first = asyncio.create_task(lookups(1))
    await squares.looking_up.wait()
    meanwhile = [asyncio.create_task(lookups(question)) for question in (2, 3, 4)]
    await asyncio.sleep(0)
    squares.release.set()

    assert await asyncio.gather(first, *meanwhile) == [1, 4, 9, 16]
    assert squares.batches == [[1], [2, 3], [4]]


async def test_a_failed_lookup_raises_in_every_request_of_its_batch_and_the_next_batch_is_tried() -> None:
    failures = iter([ConnectionError("database gone")])

    async def look_up(questions: Sequence[int]) -> list[int]:
        if (failure := next(failures, None)) is not None:
            raise failure
        return list(questions)

    lookups = Batched(look_up)
    together = await asyncio.gather(lookups(1), lookups(2), return_exceptions=True)
    assert [type(outcome) for outcome in together] == [ConnectionError, ConnectionError]
    assert await lookups(3) == 3


async def test_a_request_given_up_on_does_not_disturb_the_others_of_its_batch() -> None:
    squares = HeldSquares()
    lookups = Batched(squares.look_up)
    first = asyncio.create_task(lookups(2))
    await squares.looking_up.wait()
    given_up = asyncio.create_task(lookups(3))
    kept = asyncio.create_task(lookups(4))
    await asyncio.sleep(0)
    given_up.cancel()
    squares.release.set()

    assert list(await asyncio.gather(first, kept)) == [4, 16]
    with pytest.raises(asyncio.CancelledError):
        await given_up


async def test_requests_behind_a_stopped_lookup_are_cancelled_not_left_waiting() -> None:
    squares = HeldSquares()
    lookups = Batched(squares.look_up)
    first = asyncio.create_task(lookups(2))
    await squares.looking_up.wait()
    queued = asyncio.create_task(lookups(3))
    await asyncio.sleep(0)

    performing = lookups._performing
    assert performing is not None
    performing.cancel()

    _, still_waiting = await asyncio.wait([first, queued], timeout=5)  # a bound: without the fix, for ever
    assert not still_waiting
    assert first.cancelled() and queued.cancelled()
