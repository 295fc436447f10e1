"""The grades as a table, for dashboards: each month's group-wide standings, kept up to date.

The grades endpoint computes grades when asked; a dashboard reading PostgreSQL needs them stored.
`hall_grades` holds every hall's status, score, rank, grade and tie flag in the group-wide ranking
of each month, as `standings.grades` gives them. Copying score changes, or recording a hall, marks
its month in `periods_to_grade` (`read_model.mark_periods`); a refresher grades each marked month
again and replaces its rows in the transaction that clears the mark, so a crash leaves it marked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from services.scoring import read_model, standings
from services.scoring.policy import ScoringPolicy
from shared.organisation import OrgUnit

logger = logging.getLogger(__name__)
REFRESH_SECONDS = 1.0


async def refresh(pool: asyncpg.Pool, policies: dict[str, ScoringPolicy]) -> list[str]:
    """Grades every marked month again; returns the months refreshed."""
    async with pool.acquire() as connection, connection.transaction():
        periods = [row["period"] for row in await connection.fetch("DELETE FROM periods_to_grade RETURNING period")]
        refreshed = []
        for period in sorted(periods):
            try:
                graded = await standings.grades(pool, policies, period, OrgUnit(), None)
            except standings.NoScoringPolicy:
                continue  # a month before the first policy: nothing to grade it by
            units = await read_model.units_of(pool, [hall.hall_id for hall in graded.halls])
            await connection.execute("DELETE FROM hall_grades WHERE period = $1", period)
            await connection.executemany(
                "INSERT INTO hall_grades VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                [
                    (
                        period,
                        hall.hall_id,
                        *units[hall.hall_id],
                        hall.status,
                        hall.score,
                        hall.rank,
                        hall.grade,
                        hall.tied_at_boundary,
                        hall.dropped_by_quota,
                        graded.policy_version,
                    )
                    for hall in graded.halls
                ],
            )
            refreshed.append(period)
    return refreshed


@contextlib.asynccontextmanager
async def refreshing(
    pool: asyncpg.Pool, policies: dict[str, ScoringPolicy], every_seconds: float = REFRESH_SECONDS
) -> AsyncIterator[None]:
    async def refresh_now_and_then() -> None:
        while True:
            try:
                await refresh(pool, policies)
            except Exception:  # the database may come back; the table must not freeze for good
                logger.exception("grades not refreshed; trying again")
            await asyncio.sleep(every_seconds)

    task = asyncio.create_task(refresh_now_and_then(), name="refresh hall grades")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
