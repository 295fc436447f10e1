"""When the SLA policies or the calendar change, every open subject's deadlines are derived again.

It runs at start-up, before the scheduler, under a lock so that of several replicas
starting together only one does it. Each change of rules is recorded with how many open
subjects it moved, and each moved subject records its old and new deadlines.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from services.escalation.application import EscalationApplication
from services.escalation.scheduler import record_due
from services.escalation.tracking import SlaRules
from shared.consumer import Connection

logger = logging.getLogger(__name__)


class RuleChange(BaseModel):
    changed_at: datetime
    policy_versions: list[str]
    calendar_version: str
    open_subjects: int
    recalculated: int


def fingerprint(rules: SlaRules) -> str:
    policies = [policy.model_dump(mode="json") for policy in rules.policies]
    content = json.dumps({"policies": policies, "calendar": rules.calendars.version}, sort_keys=True)
    return hashlib.sha256(content.encode()).hexdigest()


async def apply_rule_changes(application: EscalationApplication, pool: asyncpg.Pool, batch_size: int = 500) -> None:
    rules = application.rules
    current = fingerprint(rules)
    async with pool.acquire() as connection:
        await connection.execute("SELECT pg_advisory_lock(hashtext('sla-recalculation'))")
        try:
            last = await connection.fetchval(
                "SELECT fingerprint FROM sla_rule_changes ORDER BY changed_at DESC LIMIT 1"
            )
            if last == current:
                return
            open_subjects = recalculated = 0
            async for batch in _open_subjects(connection, batch_size):
                async with connection.transaction():
                    dues, changed = await asyncio.to_thread(application.recalculate, batch)
                    await record_due(connection, dues)
                open_subjects += len(batch)
                recalculated += changed
            await connection.execute(
                "INSERT INTO sla_rule_changes VALUES ($1, $2, $3, $4, $5, $6)",
                application.clock(),
                current,
                [policy.version for policy in rules.policies],
                rules.calendars.version,
                open_subjects,
                recalculated,
            )
            logger.info("SLA rules changed: %d of %d open subjects recalculated", recalculated, open_subjects)
        finally:
            await connection.execute("SELECT pg_advisory_unlock(hashtext('sla-recalculation'))")


async def _open_subjects(connection: Connection, batch_size: int) -> AsyncIterator[list[uuid.UUID]]:
    after = None
    while True:
        rows = await connection.fetch(
            "SELECT sla_id FROM sla_deadlines WHERE $1::uuid IS NULL OR sla_id > $1 ORDER BY sla_id LIMIT $2",
            after,
            batch_size,
        )
        if not rows:
            return
        batch = [row["sla_id"] for row in rows]
        yield batch
        after = batch[-1]


async def rule_changes(pool: asyncpg.Pool) -> list[RuleChange]:
    rows = await pool.fetch("SELECT * FROM sla_rule_changes ORDER BY changed_at")
    return [RuleChange.model_validate(dict(row)) for row in rows]
