"""Durable deadlines: one row per open subject with its next milestone, fired by whichever replica claims it.

The row is claimed with `FOR UPDATE SKIP LOCKED`, so two replicas never work on the same
subject at once; the subject's own record of fired milestones makes a retry after a crash
fire nothing twice. A deadline that passed while no replica ran is simply due at start.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

import asyncpg

from services.escalation.application import Due, EscalationApplication
from services.escalation.repositories import Deadlines, PostgresDeadlines
from shared.clock import Clock
from shared.consumer import TRANSIENT_ERRORS

logger = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        application: EscalationApplication,
        pool: asyncpg.Pool,
        clock: Clock,
        batch_size: int = 200,
        max_idle_seconds: float = 0.2,
        min_idle_seconds: float = 0.05,
        retry_failed_after: timedelta = timedelta(minutes=1),
    ) -> None:
        self.application = application
        self.pool = pool
        self.clock = clock
        self.batch_size = batch_size
        self.max_idle_seconds = max_idle_seconds
        self.min_idle_seconds = min_idle_seconds  # rows another replica holds are due but not ours to take
        self.retry_failed_after = retry_failed_after

    async def run(self) -> None:
        while True:
            try:
                if await self.fire_next_batch() == 0:
                    await self._idle()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("scheduler: firing failed; retrying")
                await asyncio.sleep(1)

    async def fire_next_batch(self) -> int:
        """Claims up to a batch of subjects whose deadline has come, fires them; returns how many it claimed."""
        async with self.pool.acquire() as connection, connection.transaction():
            deadlines = PostgresDeadlines(connection)
            sla_ids = await deadlines.claim_due(self.clock(), self.batch_size)
            try:
                dues = await asyncio.to_thread(self.application.fire_due, sla_ids)
            except TRANSIENT_ERRORS:  # the database, not the subjects: the whole batch is tried again
                raise
            except Exception:
                dues = await self._fire_one_by_one(deadlines, sla_ids)
            await deadlines.record(dues)
        return len(sla_ids)

    async def _fire_one_by_one(self, deadlines: Deadlines, sla_ids: list[uuid.UUID]) -> list[Due]:
        """One subject that cannot be fired (e.g. its policy file was removed) must not hold back the rest."""
        dues = []
        for sla_id in sla_ids:
            try:
                dues += await asyncio.to_thread(self.application.fire_due, [sla_id])
            except TRANSIENT_ERRORS:
                raise
            except Exception:
                logger.exception("scheduler: cannot fire %s; trying again in %s", sla_id, self.retry_failed_after)
                await deadlines.postpone(sla_id, self.clock() + self.retry_failed_after)
        return dues

    async def _idle(self) -> None:
        """Sleeps until the next deadline, but never so long that a moved clock or a new deadline waits."""
        next_due = await PostgresDeadlines(self.pool).next_due()
        pause = self.max_idle_seconds
        if next_due is not None:
            pause = min(pause, (next_due - self.clock()).total_seconds())
        await asyncio.sleep(max(pause, self.min_idle_seconds))
