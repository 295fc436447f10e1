"""What the complaints service keeps beside its events: serial blocks for complaint numbers, and
failed verifications of the public progress page.

Each store has a PostgreSQL implementation on the service's asyncpg pool, which creates its own
table (`create`, run by the migration), and an in-memory one for the use-case tests.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from typing import Protocol

import asyncpg

COMPLAINT_NUMBER_SEQUENCE = "complaint_number_seq"
BLOCK_SIZE = 100


class SerialBlocks(Protocol):
    async def reserve(self) -> int:
        """The first serial of a block of `BLOCK_SIZE` that no one else is given."""
        ...


class VerificationFailures(Protocol):
    async def count_since(self, number: str, since: datetime) -> int: ...

    async def record(self, number: str, at: datetime) -> None: ...


class PostgresSerialBlocks:
    """A block is one `nextval` of a sequence that steps by the block's size, so replicas never share a serial."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self) -> None:
        await self.pool.execute(
            f"CREATE SEQUENCE IF NOT EXISTS {COMPLAINT_NUMBER_SEQUENCE} INCREMENT BY {BLOCK_SIZE};"
            f"ALTER SEQUENCE {COMPLAINT_NUMBER_SEQUENCE} INCREMENT BY {BLOCK_SIZE}"
        )

    async def reserve(self) -> int:
        return int(await self.pool.fetchval("SELECT nextval($1)", COMPLAINT_NUMBER_SEQUENCE))


class PostgresVerificationFailures:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self) -> None:
        await self.pool.execute(
            """
            CREATE TABLE IF NOT EXISTS verification_failures (
                number text NOT NULL,
                failed_at timestamptz NOT NULL
            );
            CREATE INDEX IF NOT EXISTS verification_failures_by_number ON verification_failures (number, failed_at);
            """
        )

    async def count_since(self, number: str, since: datetime) -> int:
        query = "SELECT count(*) FROM verification_failures WHERE number = $1 AND failed_at > $2"
        return int(await self.pool.fetchval(query, number, since))

    async def record(self, number: str, at: datetime) -> None:
        await self.pool.execute("INSERT INTO verification_failures (number, failed_at) VALUES ($1, $2)", number, at)


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


class InMemoryVerificationFailures:
    def __init__(self) -> None:
        self._failures: list[tuple[str, datetime]] = []

    async def count_since(self, number: str, since: datetime) -> int:
        return sum(1 for failed, at in self._failures if failed == number and at > since)

    async def record(self, number: str, at: datetime) -> None:
        self._failures.append((number, at))
