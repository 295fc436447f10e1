"""Lookups from concurrent requests answered in shared queries.

The first lookup is sent at once; those asked while it is under way wait for it and go together in the
next query, so under load each request pays a share of one round trip, not one of its own, and an idle
service answers without delay. The group committer (group_commit.py) batches the writes the same way.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Question = TypeVar("Question")
Answer = TypeVar("Answer")


@dataclass(frozen=True)
class _Asked(Generic[Question, Answer]):
    question: Question
    answer: asyncio.Future[Answer]


class BatchedLookups(Generic[Question, Answer]):
    def __init__(
        self, look_up: Callable[[Sequence[Question]], Awaitable[Sequence[Answer]]], max_batch: int = 64
    ) -> None:
        """`look_up`: the answers to a batch of questions, in their order."""
        self._look_up = look_up
        self._max_batch = max_batch
        self._asked: list[_Asked[Question, Answer]] = []
        self._answering: asyncio.Task[None] | None = None

    async def ask(self, question: Question) -> Answer:
        """The answer to `question`, or what looking it up raised."""
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._asked.append(_Asked(question, answer))
        if self._answering is None:
            # In a context of its own: a batch serves many requests, not the first one's span.
            self._answering = asyncio.create_task(self._answer_while_asked(), context=contextvars.Context())
        return await answer

    async def _answer_while_asked(self) -> None:
        batch: list[_Asked[Question, Answer]] = []
        try:
            while self._asked:
                batch, self._asked = self._asked[: self._max_batch], self._asked[self._max_batch :]
                await self._answer(batch)
        except asyncio.CancelledError:
            # Nothing will answer them now: their requests must not wait for ever.
            for asked in [*batch, *self._asked]:
                asked.answer.cancel()
            self._asked = []
            raise
        finally:
            self._answering = None

    async def _answer(self, batch: list[_Asked[Question, Answer]]) -> None:
        try:
            answers = await self._look_up([asked.question for asked in batch])
        except Exception as error:
            for asked in batch:
                if not asked.answer.done():  # a request given up on has cancelled its own
                    asked.answer.set_exception(error)
            return
        for asked, answer in zip(batch, answers, strict=True):
            if not asked.answer.done():
                asked.answer.set_result(answer)
