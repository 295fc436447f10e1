"""What the complaints service keeps beside its events: serial blocks for complaint numbers, and
the failed attempts of the public progress query, by client.

Each store has a PostgreSQL implementation on the service's asyncpg pool, which creates its own
table (`create`, run by the migration), and an in-memory one for the use-case tests.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg

COMPLAINT_NUMBER_SEQUENCE = "complaint_number_seq"
BLOCK_SIZE = 100


class SerialBlocks(Protocol):
    async def reserve(self) -> int:
        """The first serial of a block of `BLOCK_SIZE` that no one else is given."""
        ...


class VerificationAttempts(Protocol):
    async def judge(self, client: str, now: datetime, verify: Callable[[], Awaitable[bool]]) -> Judgement:
        """Whether the client may try now and, if so, whether `verify` passed; one client's attempts one at
        a time (so that concurrent guesses all count), its failures recorded, old ones purged."""
        ...


@dataclass(frozen=True)
class Judgement:
    passed: bool
    retry_after: timedelta | None = None  # refused without trying: how long until the client may again


@dataclass(frozen=True)
class AttemptLimits:
    """A client (by address) may fail `per_client` times in `window`; once every client together has failed
    `global_budget` times in the last minute, only clients without a failure in the window may try."""

    per_client: int = 5
    window: timedelta = timedelta(minutes=15)
    global_budget: int = 300

    def judge_before(self, failures: list[datetime], recent_everywhere: int, now: datetime) -> Judgement | None:
        """A refusal, given the client's failures in the window (newest first) and everyone's in the last
        minute; None if the client may try."""
        if len(failures) >= self.per_client:
            return Judgement(False, failures[self.per_client - 1] + self.window - now)
        if failures and recent_everywhere >= self.global_budget:
            return Judgement(False, timedelta(minutes=1))
        return None


class PostgresSerialBlocks:
    """A block is one `nextval` of a sequence that steps by the block's size, so replicas never share a serial."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def reserve(self) -> int:
        return int(await self.pool.fetchval("SELECT nextval($1)", COMPLAINT_NUMBER_SEQUENCE))


class PostgresVerificationAttempts:
    """Clients are kept as digests of their address, and only while a failure of theirs is in the window."""

    def __init__(self, pool: asyncpg.Pool, limits: AttemptLimits = AttemptLimits()) -> None:
        self.pool = pool
        self.limits = limits

    async def judge(self, client: str, now: datetime, verify: Callable[[], Awaitable[bool]]) -> Judgement:
        limits = self.limits
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext('progress:' || $1))", client)
            failures = [
                row["failed_at"]
                for row in await connection.fetch(
                    "SELECT failed_at FROM progress_failures WHERE client = $1 AND failed_at > $2"
                    " ORDER BY failed_at DESC",
                    client,
                    now - limits.window,
                )
            ]
            everywhere = await connection.fetchval(
                "SELECT count(*) FROM progress_failures WHERE failed_at > $1", now - timedelta(minutes=1)
            )
            if (refusal := limits.judge_before(failures, everywhere, now)) is not None:
                return refusal
            if await verify():
                return Judgement(True)
            await connection.execute("INSERT INTO progress_failures VALUES ($1, $2)", client, now)
            await connection.execute("DELETE FROM progress_failures WHERE failed_at <= $1", now - limits.window)
            return Judgement(False)


class LegacyNumbers:
    """The table that held number → complaint before numbers were saved with their complaints."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def given(self) -> list[tuple[str, uuid.UUID]]:
        if await self.pool.fetchval("SELECT to_regclass('complaint_numbers')") is None:
            return []
        rows = await self.pool.fetch("SELECT number, complaint_id FROM complaint_numbers")
        # asyncpg's own UUID type, which the event store cannot encode, made a plain one
        return [(row["number"], uuid.UUID(bytes=row["complaint_id"].bytes)) for row in rows]

    async def drop(self) -> None:
        await self.pool.execute("DROP TABLE IF EXISTS complaint_numbers")


class InMemorySerialBlocks:
    def __init__(self) -> None:
        self._firsts = itertools.count(1, BLOCK_SIZE)

    async def reserve(self) -> int:
        return next(self._firsts)


class InMemoryVerificationAttempts:
    def __init__(self, limits: AttemptLimits = AttemptLimits()) -> None:
        self.limits = limits
        self.failures: list[tuple[str, datetime]] = []
        self._lock = asyncio.Lock()

    async def judge(self, client: str, now: datetime, verify: Callable[[], Awaitable[bool]]) -> Judgement:
        async with self._lock:
            window = now - self.limits.window
            self.failures = [(who, at) for who, at in self.failures if at > window]
            own = sorted((at for who, at in self.failures if who == client), reverse=True)
            everywhere = sum(at > now - timedelta(minutes=1) for _, at in self.failures)
            if (refusal := self.limits.judge_before(own, everywhere, now)) is not None:
                return refusal
            if await verify():
                return Judgement(True)
            self.failures.append((client, now))
            return Judgement(False)
