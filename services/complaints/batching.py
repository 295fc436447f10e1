"""Calls from concurrent requests made together.

The first call is made at once; those asked for while it is under way wait for it and go together in the
next batch, so under load each request pays a share of one round trip, not one of its own, and an idle
service answers without delay. Registration batches its repeat lookups and its commits so.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


@dataclass(frozen=True)
class _Asked(Generic[Item, Outcome]):
    item: Item
    outcome: asyncio.Future[Outcome]


class Batched(Generic[Item, Outcome]):
    def __init__(self, perform: Callable[[Sequence[Item]], Awaitable[Sequence[Outcome]]], max_batch: int = 64) -> None:
        """`perform`: the outcome of each item of a batch, in their order; what it raises, every item of the
        batch raises."""
        self._perform = perform
        self._max_batch = max_batch
        self._asked: list[_Asked[Item, Outcome]] = []
        self._performing: asyncio.Task[None] | None = None

    async def __call__(self, item: Item) -> Outcome:
        """The outcome for `item`, once its batch is performed."""
        outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._asked.append(_Asked(item, outcome))
        if self._performing is None:
            # In a context of its own: a batch serves many requests, not the first one's span.
            self._performing = asyncio.create_task(self._perform_while_asked(), context=contextvars.Context())
        return await outcome

    async def idle(self) -> None:
        """Returns once every batch under way or waiting is performed."""
        if self._performing is not None:
            await asyncio.shield(self._performing)

    @property
    def waiting(self) -> int:
        """Items queued behind the batch under way."""
        return len(self._asked)

    async def _perform_while_asked(self) -> None:
        batch: list[_Asked[Item, Outcome]] = []
        try:
            while self._asked:
                batch, self._asked = self._asked[: self._max_batch], self._asked[self._max_batch :]
                await self._perform_batch(batch)
        except asyncio.CancelledError:
            # Nothing will perform them now: their requests must not wait for ever (a settled one stays so).
            for asked in [*batch, *self._asked]:
                asked.outcome.cancel()
            self._asked = []
            raise
        finally:
            self._performing = None

    async def _perform_batch(self, batch: list[_Asked[Item, Outcome]]) -> None:
        # A request given up on (its client gone) has cancelled its future: its item is performed all the same.
        try:
            outcomes = await self._perform([asked.item for asked in batch])
        except Exception as error:
            for asked in batch:
                if not asked.outcome.done():
                    asked.outcome.set_exception(error)
            return
        for asked, outcome in zip(batch, outcomes, strict=True):
            if not asked.outcome.done():
                asked.outcome.set_result(outcome)
