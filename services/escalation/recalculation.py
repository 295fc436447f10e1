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

import asyncpg

from services.escalation.application import EscalationApplication
from services.escalation.repositories import (
    RECALCULATION_LOCK,
    Deadlines,
    PostgresDeadlines,
    PostgresRuleChanges,
    RuleChange,
    exclusively,
)
from services.escalation.tracking import SlaRules

logger = logging.getLogger(__name__)


def fingerprint(rules: SlaRules) -> str:
    policies = [policy.model_dump(mode="json") for policy in rules.policies]
    content = json.dumps({"policies": policies, "calendar": rules.calendars.version}, sort_keys=True)
    return hashlib.sha256(content.encode()).hexdigest()


async def apply_rule_changes(application: EscalationApplication, pool: asyncpg.Pool, batch_size: int = 500) -> None:
    rules = application.rules
    current = fingerprint(rules)
    async with pool.acquire() as connection, exclusively(connection, RECALCULATION_LOCK):
        rule_changes, deadlines = PostgresRuleChanges(connection), PostgresDeadlines(connection)
        if await rule_changes.latest_fingerprint() == current:
            return
        open_subjects = recalculated = 0
        async for batch in _open_subjects(deadlines, batch_size):
            async with connection.transaction():
                dues, changed = await asyncio.to_thread(application.recalculate, batch)
                await deadlines.record(dues)
            open_subjects += len(batch)
            recalculated += changed
        change = RuleChange(
            changed_at=application.clock(),
            policy_versions=[policy.version for policy in rules.policies],
            calendar_version=rules.calendars.version,
            open_subjects=open_subjects,
            recalculated=recalculated,
        )
        await rule_changes.record(current, change)
        logger.info("SLA rules changed: %d of %d open subjects recalculated", recalculated, open_subjects)


async def _open_subjects(deadlines: Deadlines, batch_size: int) -> AsyncIterator[list[uuid.UUID]]:
    after = None
    while batch := await deadlines.open_subjects_after(after, batch_size):
        yield batch
        after = batch[-1]
