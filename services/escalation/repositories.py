"""What the escalation service keeps beside its events: each open subject's next deadline, every change
of SLA rules it recalculated the open subjects for, and whether the verdict backfill has scanned the store.

Each store has a PostgreSQL implementation on what it is given: a connection, whose transaction its
writes join (the consumer's batch, the scheduler's claim), or the service's asyncpg pool. The tables
are created by the service's migrations.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Protocol

import asyncpg
from pydantic import BaseModel

from services.escalation.application import Due
from shared.database import Connection

Executor = asyncpg.Pool | Connection | asyncpg.Connection
RECALCULATION_LOCK = "sla-recalculation"
VERDICT_BACKFILL_LOCK = "sla-verdict-backfill"


class RuleChange(BaseModel):
    changed_at: datetime
    policy_versions: list[str]
    calendar_version: str
    open_subjects: int
    recalculated: int


class Deadlines(Protocol):
    async def record(self, dues: Iterable[Due]) -> None:
        """Each subject's next deadline, or none once it is closed; an older version never overwrites a newer one."""
        ...

    async def claim_due(self, now: datetime, limit: int) -> list[uuid.UUID]:
        """Up to `limit` subjects whose deadline has come by `now`, earliest first, none that another transaction
        holds; this one holds them until it ends."""
        ...

    async def postpone(self, sla_id: uuid.UUID, until: datetime) -> None:
        """The subject's deadline becomes `until`."""
        ...

    async def next_due(self) -> datetime | None:
        """The earliest deadline of any subject; None if no subject has one."""
        ...

    async def open_subjects_after(self, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
        """Up to `limit` open subjects in the order of their ids, after `after` (from the first, if None)."""
        ...


class RuleChanges(Protocol):
    async def latest_fingerprint(self) -> str | None:
        """The fingerprint of the rules of the latest change; None before the first."""
        ...

    async def record(self, fingerprint: str, change: RuleChange) -> None:
        """A change to the rules of `fingerprint`, with how many open subjects it moved."""
        ...

    async def all(self) -> list[RuleChange]:
        """Every change, oldest first."""
        ...


class VerdictBackfills(Protocol):
    async def finished(self) -> bool:
        """Whether a scan of this store was recorded as complete."""
        ...

    async def record(self, finished_at: datetime, subjects: int, verdicts: int) -> None:
        """A complete scan: how many subjects it replayed and how many verdicts it recorded."""
        ...


@contextlib.asynccontextmanager
async def exclusively(connection: Connection, lock: str) -> AsyncIterator[None]:
    """Runs the block once no other session holds `lock`, and keeps every other waiting for it until the block
    ends. The lock is the session's: the block keeps the connection, and the lock is given back with it."""
    await connection.execute("SELECT pg_advisory_lock(hashtext($1))", lock)
    try:
        yield
    finally:
        await connection.execute("SELECT pg_advisory_unlock(hashtext($1))", lock)


class PostgresDeadlines:
    """One row per open subject in `sla_deadlines`, with the subject's version that wrote it."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def record(self, dues: Iterable[Due]) -> None:
        dues = list(dues)
        await self.executor.executemany(
            """
            INSERT INTO sla_deadlines AS d (sla_id, due_at, version) VALUES ($1, $2, $3)
            ON CONFLICT (sla_id) DO UPDATE SET due_at = EXCLUDED.due_at, version = EXCLUDED.version
            WHERE d.version <= EXCLUDED.version
            """,
            [(due.sla_id, due.due_at, due.version) for due in dues if due.open],
        )
        await self.executor.executemany(
            "DELETE FROM sla_deadlines WHERE sla_id = $1 AND version <= $2",
            [(due.sla_id, due.version) for due in dues if not due.open],
        )

    async def claim_due(self, now: datetime, limit: int) -> list[uuid.UUID]:
        rows = await self.executor.fetch(
            """
            SELECT sla_id FROM sla_deadlines WHERE due_at <= $1
            ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED
            """,
            now,
            limit,
        )
        return [row["sla_id"] for row in rows]

    async def postpone(self, sla_id: uuid.UUID, until: datetime) -> None:
        await self.executor.execute("UPDATE sla_deadlines SET due_at = $2 WHERE sla_id = $1", sla_id, until)

    async def next_due(self) -> datetime | None:
        next_due: datetime | None = await self.executor.fetchval(
            "SELECT min(due_at) FROM sla_deadlines WHERE due_at IS NOT NULL"
        )
        return next_due

    async def open_subjects_after(self, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
        rows = await self.executor.fetch(
            "SELECT sla_id FROM sla_deadlines WHERE $1::uuid IS NULL OR sla_id > $1 ORDER BY sla_id LIMIT $2",
            after,
            limit,
        )
        return [row["sla_id"] for row in rows]


class PostgresRuleChanges:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def latest_fingerprint(self) -> str | None:
        fingerprint: str | None = await self.executor.fetchval(
            "SELECT fingerprint FROM sla_rule_changes ORDER BY changed_at DESC LIMIT 1"
        )
        return fingerprint

    async def record(self, fingerprint: str, change: RuleChange) -> None:
        await self.executor.execute(
            "INSERT INTO sla_rule_changes VALUES ($1, $2, $3, $4, $5, $6)",
            change.changed_at,
            fingerprint,
            change.policy_versions,
            change.calendar_version,
            change.open_subjects,
            change.recalculated,
        )

    async def all(self) -> list[RuleChange]:
        rows = await self.executor.fetch("SELECT * FROM sla_rule_changes ORDER BY changed_at")
        return [RuleChange.model_validate(dict(row)) for row in rows]


class PostgresVerdictBackfills:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def finished(self) -> bool:
        return bool(await self.executor.fetchval("SELECT EXISTS (SELECT 1 FROM sla_verdict_backfills)"))

    async def record(self, finished_at: datetime, subjects: int, verdicts: int) -> None:
        await self.executor.execute(
            "INSERT INTO sla_verdict_backfills VALUES ($1, $2, $3)", finished_at, subjects, verdicts
        )
