"""The complaints service's SQL beside its events: serial blocks for complaint numbers, the failed attempts of
the public progress query by client, the customers' wrapped data keys (`customer_keys`, for personal_data), the
table of complaint numbers from before they were saved with their complaints, and the newest stored event's
position, for the operator CLI.

The tables are created by the service's migrations (migrations/). Stores the use cases depend on have an
in-memory twin for the use-case tests, here or, for the data keys, beside their Protocol in personal_data.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg
from psycopg import sql

from services.complaints.batching import Batched
from services.complaints.personal_data import CustomersComplaint, DataKey, PhoneHistory
from shared.application import retried_while_unavailable
from shared.database import Connection
from shared.event_store import ColumnarRecorder

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


async def insert_data_keys(connection: Connection, keys: Sequence[DataKey]) -> None:
    """In the caller's transaction, the one of the events the keys seal: no complaint without its key, no key
    without its complaint. One array per column, as the events go in. Raises asyncpg's UniqueViolationError
    if a subject has a key already. `connection`: of the service's pool, whose search path is the store's schema."""
    if not keys:
        return
    rows = [(k.subject, k.wrapped, k.phone_digest, k.received_at, k.number, k.hall_code) for k in keys]
    await connection.execute(
        "INSERT INTO customer_keys (subject, wrapped_key, phone_digest, received_at, number, hall_code)"
        " SELECT * FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::timestamptz[], $5::text[], $6::text[])",
        *(list(column) for column in zip(*rows, strict=True)),
    )


@dataclass(frozen=True)
class PhoneQuestion:
    phone_digest: bytes
    received_from: datetime
    received_until: datetime
    limit: int


class PostgresDataKeys:
    """On the event store's own connections (eventsourcing's datastore), so the application's threads use it
    as they use the store; what registration does on the event loop goes through the service's asyncpg pool.
    A destroyed key's row stays, without key or digest, to say when it went."""

    def __init__(self, recorder: object, pool: asyncpg.Pool) -> None:
        """`recorder`: the store's, whose connections these share."""
        assert isinstance(recorder, ColumnarRecorder), "the complaints store runs with ColumnarRecorder"
        self._datastore = recorder.datastore
        self._table = sql.Identifier(recorder.datastore.schema, "customer_keys")
        self._pool = pool
        # Every registration asks one: under load, one query answers the requests that came meanwhile.
        self._histories = Batched(self._histories_of_phones)

    @retried_while_unavailable
    def _execute(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(sql.SQL(statement).format(table=self._table), params)
            return list(cursor.fetchall()) if cursor.description else []

    def wrapped(self, subject: uuid.UUID) -> bytes | None:
        rows = self._execute("SELECT wrapped_key FROM {table} WHERE subject = %s", (subject,))
        return bytes(rows[0]["wrapped_key"]) if rows and rows[0]["wrapped_key"] is not None else None

    def subjects_of_phone(self, phone_digest: bytes) -> list[uuid.UUID]:
        rows = self._execute("SELECT subject FROM {table} WHERE phone_digest = %s", (phone_digest,))
        return [row["subject"] for row in rows]

    async def history_of_phone(
        self, phone_digest: bytes, received_from: datetime, received_until: datetime, limit: int
    ) -> PhoneHistory:
        return await self._histories(PhoneQuestion(phone_digest, received_from, received_until, limit))

    async def _histories_of_phones(self, questions: Sequence[PhoneQuestion]) -> list[PhoneHistory]:
        rows = await self._pool.fetch(  # the pool's search path is the store's schema
            "SELECT q.i, h.subject, h.number, h.hall_code, h.received_at, h.count"
            " FROM unnest($1::bytea[], $2::timestamptz[], $3::timestamptz[], $4::int[])"
            " WITH ORDINALITY AS q (phone_digest, received_from, received_until, most, i)"
            " CROSS JOIN LATERAL ("
            "   SELECT subject, number, hall_code, received_at, count(*) OVER () AS count FROM customer_keys c"
            "   WHERE c.phone_digest = q.phone_digest AND c.received_at BETWEEN q.received_from AND q.received_until"
            "   ORDER BY c.received_at DESC, c.subject DESC LIMIT q.most"
            " ) h ORDER BY q.i, h.received_at DESC, h.subject DESC",
            [question.phone_digest for question in questions],
            [question.received_from for question in questions],
            [question.received_until for question in questions],
            [question.limit for question in questions],
        )
        counts = [0 for _ in questions]
        newest: list[list[CustomersComplaint]] = [[] for _ in questions]
        for row in rows:
            counts[row["i"] - 1] = int(row["count"])
            newest[row["i"] - 1].append(
                CustomersComplaint(uuid.UUID(str(row["subject"])), row["number"], row["hall_code"], row["received_at"])
            )
        return [PhoneHistory(count, complaints) for count, complaints in zip(counts, newest, strict=True)]

    def others_of_customer(
        self,
        subject: uuid.UUID,
        limit: int,
        received_from: datetime | None = None,
        received_until: datetime | None = None,
    ) -> list[CustomersComplaint]:
        rows = self._execute(
            "SELECT o.subject, o.number, o.hall_code, o.received_at FROM {table} c JOIN {table} o"
            " ON o.phone_digest = c.phone_digest AND o.subject <> c.subject"
            " WHERE c.subject = %s AND o.number IS NOT NULL"
            " AND (%s::timestamptz IS NULL OR o.received_at >= %s) AND (%s::timestamptz IS NULL OR o.received_at <= %s)"
            " ORDER BY o.received_at DESC, o.subject DESC LIMIT %s",
            (subject, received_from, received_from, received_until, received_until, limit),
        )
        return [CustomersComplaint(r["subject"], r["number"], r["hall_code"], r["received_at"]) for r in rows]

    def numbered(self, number: str) -> uuid.UUID | None:
        rows = self._execute("SELECT subject FROM {table} WHERE number = %s", (number,))
        return rows[0]["subject"] if rows else None

    def destroy(self, subjects: Sequence[uuid.UUID], at: datetime) -> list[uuid.UUID]:
        rows = self._execute(
            "UPDATE {table} SET wrapped_key = NULL, phone_digest = NULL, destroyed_at = %s"
            " WHERE subject = ANY(%s) AND wrapped_key IS NOT NULL RETURNING subject",
            (at, list(subjects)),
        )
        return [row["subject"] for row in rows]

    def note_closed(self, subject: uuid.UUID, closed_at: datetime | None) -> None:
        self._execute("UPDATE {table} SET closed_at = %s WHERE subject = %s", (closed_at, subject))

    def closed_before(self, instant: datetime, limit: int) -> list[uuid.UUID]:
        rows = self._execute(
            "SELECT subject FROM {table} WHERE wrapped_key IS NOT NULL AND closed_at < %s ORDER BY closed_at LIMIT %s",
            (instant, limit),
        )
        return [row["subject"] for row in rows]


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


async def newest_event_position(pool: asyncpg.Pool) -> int:
    """The position of the newest stored event, 0 if none: a relay at it has published every event."""
    # eventsourcing names the store's table after the application (`ComplaintsApplication.name`)
    return int(await pool.fetchval("SELECT coalesce(max(notification_id), 0) FROM complaints_events"))


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
