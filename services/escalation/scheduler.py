"""Durable deadlines: one row per open subject with its next milestone, fired by whichever replica claims it.

The row is claimed with `FOR UPDATE SKIP LOCKED`, so two replicas never work on the same
subject at once; the subject's own record of fired milestones makes a retry after a crash
fire nothing twice. A deadline that passed while no replica ran is simply due at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import asyncpg

from services.escalation.application import Due, EscalationApplication
from shared.clock import Clock
from shared.consumer import Connection

logger = logging.getLogger(__name__)

DEADLINES_DDL = """
CREATE TABLE IF NOT EXISTS sla_deadlines (
    sla_id uuid PRIMARY KEY,
    due_at timestamptz,
    version integer NOT NULL
);
CREATE INDEX IF NOT EXISTS sla_deadlines_by_due ON sla_deadlines (due_at) WHERE due_at IS NOT NULL;
"""


async def create_tables(pool: asyncpg.Pool) -> None:
    await pool.execute(DEADLINES_DDL)


async def record_due(connection: Connection | asyncpg.Connection, dues: Iterable[Due]) -> None:
    """Writes each subject's next deadline; an older version never overwrites a newer one."""
    dues = list(dues)
    await connection.executemany(
        """
        INSERT INTO sla_deadlines AS d (sla_id, due_at, version) VALUES ($1, $2, $3)
        ON CONFLICT (sla_id) DO UPDATE SET due_at = EXCLUDED.due_at, version = EXCLUDED.version
        WHERE d.version <= EXCLUDED.version
        """,
        [(due.sla_id, due.due_at, due.version) for due in dues if due.open],
    )
    await connection.executemany(
        "DELETE FROM sla_deadlines WHERE sla_id = $1 AND version <= $2",
        [(due.sla_id, due.version) for due in dues if not due.open],
    )


class Scheduler:
    def __init__(
        self,
        application: EscalationApplication,
        pool: asyncpg.Pool,
        clock: Clock,
        batch_size: int = 200,
        max_idle_seconds: float = 0.2,
    ) -> None:
        self.application = application
        self.pool = pool
        self.clock = clock
        self.batch_size = batch_size
        self.max_idle_seconds = max_idle_seconds

    async def run(self) -> None:
        while True:
            try:
                fired = await self.fire_next_batch()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("scheduler: firing failed; retrying")
                await asyncio.sleep(1)
                continue
            if fired == 0:
                await self._idle()

    async def fire_next_batch(self) -> int:
        """Claims up to a batch of subjects whose deadline has come, fires them; returns how many it claimed."""
        async with self.pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                """
                SELECT sla_id FROM sla_deadlines WHERE due_at <= $1
                ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED
                """,
                self.clock(),
                self.batch_size,
            )
            if not rows:
                return 0
            dues, _ = await asyncio.to_thread(self.application.fire_due, [row["sla_id"] for row in rows])
            await record_due(connection, dues)
        return len(rows)

    async def _idle(self) -> None:
        """Sleeps until the next deadline, but never so long that a moved clock or a new deadline waits."""
        next_due = await self.pool.fetchval("SELECT min(due_at) FROM sla_deadlines WHERE due_at IS NOT NULL")
        pause = self.max_idle_seconds
        if next_due is not None:
            pause = min(pause, max((next_due - self.clock()).total_seconds(), 0))
        await asyncio.sleep(pause)
