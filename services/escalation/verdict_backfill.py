"""Verdicts on the clocks that stopped before escalation recorded verdicts (`SlaClockStopped`).

Scoring and the SLA gauges take escalation's verdict instead of reading steps, so a subject stored
before verdicts existed would never tell them its clocks had stopped. Once per store, at start-up,
before the consumer runs and under a lock (of several replicas starting together one does it),
every subject's stored events are replayed and the verdict on each of its stops is recorded as
`SlaSubject.observe` would have recorded it; the relay publishes them like any other event.
A verdict is keyed by its clock and stop instant, so a scan interrupted and run again records none
twice. The scan is recorded once it is complete; a store created with verdicts scans nothing.

A replica of the earlier version still running after the scan (a rolling update) records stops
without verdicts that no later start-up looks for: replace the escalation replicas, do not roll them.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.escalation.application import EscalationApplication
from services.escalation.repositories import VERDICT_BACKFILL_LOCK, PostgresVerdictBackfills, exclusively

logger = logging.getLogger(__name__)


async def record_missing_verdicts(application: EscalationApplication, pool: asyncpg.Pool, batch_size: int = 500) -> int:
    """Returns how many verdicts it recorded: none once a scan of this store has finished."""
    async with pool.acquire() as connection, exclusively(connection, VERDICT_BACKFILL_LOCK):
        backfills = PostgresVerdictBackfills(connection)
        if await backfills.finished():
            return 0
        subjects = verdicts = 0
        position = 0
        while batch := await asyncio.to_thread(application.subjects_opened_after, position, batch_size):
            verdicts += await asyncio.to_thread(application.record_missing_verdicts, [id_ for _, id_ in batch])
            subjects += len(batch)
            position = batch[-1][0]
        await backfills.record(application.clock(), subjects, verdicts)
        logger.info("recorded %d verdicts on clocks %d subjects stopped before verdicts", verdicts, subjects)
        return verdicts
