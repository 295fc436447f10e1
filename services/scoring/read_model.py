"""What grades, audits and what-ifs read, in scoring's own schema: the halls, and every score change.

`halls` is the hall registry, from `HallRegistered`: which halls a scope holds and which are
graded. `score_changes` holds each fact the scorecards applied, copied from scoring's own event
store in store order, with the position reached recorded in the same transaction, so a crash
copies nothing twice and starting from position 0 copies every change ever stored. Replicas
may copy side by side: a change already copied is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, TypeAdapter

from services.scoring.application import ScoringApplication
from services.scoring.domain import Scorecard
from shared.clock import months_between, period_of
from shared.consumer import Connection
from shared.contracts import SCORING_FACT, AnyScoringFact, HallChangedV1, HallRegisteredV1, IntegrationEvent
from shared.organisation import OrgUnit

logger = logging.getLogger(__name__)
COPY_BATCH_SIZE = 500
COPY_LINGER_SECONDS = 0.02  # as the relays linger (shared/relay.py)

CHANGES_JSON = TypeAdapter(list[dict[str, Any]])


@dataclass(frozen=True)
class HallScore:
    hall_id: str
    level: int  # level, ownership and closure: as the hall was at the instant asked for
    ownership: str
    closed: bool
    score: float | None  # None: no change reached the hall's scorecard
    inspections: int


@dataclass(frozen=True)
class HallFacts:
    hall_id: str
    level: int
    ownership: str
    closed: bool
    facts: list[AnyScoringFact] = field(default_factory=list)  # in the order the scorecard applied them


class ScoreChangeEntry(BaseModel):
    happened_at: datetime
    recorded_at: datetime
    source_event_type: str
    source_event_id: uuid.UUID
    subject_id: uuid.UUID
    fact: str
    policy_version: str
    score_before: float
    score: float
    changes: list[dict[str, Any]]


async def mark_periods(connection: Connection, periods: set[str]) -> None:
    """Marks months whose grades may have moved, for `grades_table` to grade again.

    A mark already there is updated, not left alone: the update locks it until this transaction commits,
    so a refresher taking the marks meanwhile waits and then grades with this transaction's changes. Left
    alone, the refresher would take the mark, grade without them, and nothing would mark them again."""
    if periods:
        await connection.execute(
            """
            INSERT INTO periods_to_grade SELECT unnest($1::text[])
            ON CONFLICT (period) DO UPDATE SET period = EXCLUDED.period
            """,
            sorted(periods),
        )


async def record_hall(connection: Connection, event: IntegrationEvent, recorded_at: datetime) -> None:
    """`recorded_at`: by scoring's clock, as score changes are, so that grades as of an instant list the
    halls that scoring knew of then."""
    hall = event.payload
    assert isinstance(hall, HallRegisteredV1)
    await connection.execute(
        """
        INSERT INTO halls (hall_id, province, city, level, ownership, registered_at) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (hall_id) DO UPDATE SET registered_at = EXCLUDED.registered_at WHERE halls.registered_at IS NULL
        """,
        hall.hall_id,
        hall.province,
        hall.city,
        hall.level,
        hall.ownership,
        recorded_at,
    )
    await mark_periods(connection, {period_of(recorded_at)})


async def record_hall_change(connection: Connection, event: IntegrationEvent, recorded_at: datetime) -> None:
    """`recorded_at`: by scoring's clock, as score changes are, so that grades as of an instant take the changes
    scoring knew of then. Every month from the change's effect to now (or to its effect, if later) is graded
    again."""
    change = event.payload
    assert isinstance(change, HallChangedV1)
    await connection.execute(
        "INSERT INTO hall_changes VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
        event.envelope.event_id,
        change.hall_id,
        change.effective_from,
        change.level,
        change.ownership,
        change.closed,
        recorded_at,
    )
    await mark_periods(connection, months_between(change.effective_from, recorded_at))


async def copy_score_changes(
    application: ScoringApplication, pool: asyncpg.Pool, batch_size: int = COPY_BATCH_SIZE
) -> int:
    """Copies the score changes among the next events stored since the last copy; returns how far the
    copy's position moved (0 if nothing was stored since). Below `batch_size`, the copy is caught up."""
    position = await pool.fetchval("SELECT position FROM score_changes_copied") or 0
    reached, applied = await asyncio.to_thread(application.facts_applied_after, position, batch_size)
    if reached == position:
        return 0
    async with pool.acquire() as connection, connection.transaction():
        await connection.executemany(
            """
            INSERT INTO score_changes VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12::jsonb, $13, $14)
            ON CONFLICT DO NOTHING
            """,
            [_row(fact) for fact in applied],
        )
        await mark_periods(connection, {fact.period for fact in applied})
        await connection.execute(
            """
            INSERT INTO score_changes_copied (position) VALUES ($1)
            ON CONFLICT (only_row) DO UPDATE SET position = greatest(score_changes_copied.position, $1)
            """,
            reached,
        )
    return int(reached - position)


def _row(applied: Scorecard.FactApplied) -> tuple[object, ...]:
    fact = applied.scoring_fact
    return (
        applied.originator_id,
        applied.originator_version,
        applied.hall_id,
        applied.period,
        fact.subject,
        fact.model_dump_json(),
        applied.source_event_id,
        applied.source_event_type,
        applied.policy_version,
        applied.score_before,
        applied.score_after,
        CHANGES_JSON.dump_json(applied.changes).decode(),
        applied.occurred_at,
        applied.timestamp,
    )


@contextlib.asynccontextmanager
async def copying_score_changes(
    application: ScoringApplication, pool: asyncpg.Pool, database_url: str, idle_seconds: float = 1.0
) -> AsyncIterator[None]:
    """Copies for the block, woken by the store's NOTIFY on each commit (and at least every `idle_seconds`)."""
    stored = asyncio.Event()
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(f"{ScoringApplication.name}_events", lambda *_: stored.set())

    async def copy_as_stored() -> None:
        while True:
            stored.clear()  # before reading: a commit during the copy wakes the next wait at once
            try:
                if await copy_score_changes(application, pool) >= COPY_BATCH_SIZE:
                    continue  # a full batch: more may be waiting
            except Exception:  # the database may come back; the grades must not freeze for good
                logger.exception("score changes not copied; trying again")
            try:
                await asyncio.wait_for(stored.wait(), idle_seconds)
            except TimeoutError:
                continue
            await asyncio.sleep(COPY_LINGER_SECONDS)  # commits come one at a time: let the copy take several

    task = asyncio.create_task(copy_as_stored(), name="copy score changes")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await listener.close()


async def hall_unit(pool: asyncpg.Pool, hall_id: str) -> OrgUnit | None:
    row = await pool.fetchrow("SELECT province, city FROM halls WHERE hall_id = $1", hall_id)
    return OrgUnit.of_hall(row["province"], row["city"], hall_id) if row else None


async def halls_within(pool: asyncpg.Pool, unit: OrgUnit) -> set[str]:
    """The halls at or below `unit`."""
    province, city = _scope(unit)
    hall = unit.path[2] if len(unit.path) > 2 else None
    rows = await pool.fetch(
        "SELECT hall_id FROM halls WHERE ($1::text IS NULL OR province = $1) AND ($2::text IS NULL OR city = $2)"
        " AND ($3::text IS NULL OR hall_id = $3)",
        province,
        city,
        hall,
    )
    return {row["hall_id"] for row in rows}


async def units_of(pool: asyncpg.Pool, hall_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Each hall's province and city."""
    rows = await pool.fetch("SELECT hall_id, province, city FROM halls WHERE hall_id = ANY($1::text[])", hall_ids)
    return {row["hall_id"]: (row["province"], row["city"]) for row in rows}


def _scope(scope: OrgUnit) -> tuple[str | None, str | None]:
    return (scope.path[0] if len(scope.path) > 0 else None, scope.path[1] if len(scope.path) > 1 else None)


def hall_at(at: str, as_of: str) -> str:
    """A lateral join giving `changed.level`, `changed.ownership` and `changed.closed`: each as the latest change
    effective at or before the instant `at` sets it (of two effective at once, the later recorded), among the
    changes recorded by `as_of` (all, if NULL); NULL where no change set it."""
    latest = (
        "(SELECT c.{column} FROM hall_changes c WHERE c.hall_id = h.hall_id AND c.{column} IS NOT NULL"  # noqa: S608
        f" AND c.effective_from <= {at}::timestamptz AND ({as_of}::timestamptz IS NULL OR c.recorded_at <= {as_of})"
        " ORDER BY c.effective_from DESC, c.recorded_at DESC LIMIT 1) AS {column}"
    )
    columns = ", ".join(latest.format(column=column) for column in ("level", "ownership", "closed"))
    return f"LEFT JOIN LATERAL (SELECT {columns}) changed ON true"


HALL_COLUMNS = (
    "coalesce(changed.level, h.level) AS level, coalesce(changed.ownership, h.ownership) AS ownership,"
    " coalesce(changed.closed, false) AS closed"
)

# The halls of a scope, as registered by `$4` (all, if NULL).
HALLS_IN_SCOPE = """
    ($2::text IS NULL OR h.province = $2) AND ($3::text IS NULL OR h.city = $3)
    AND ($4::timestamptz IS NULL OR h.registered_at IS NULL OR h.registered_at <= $4)
"""


async def latest_scores(
    pool: asyncpg.Pool, period: str, scope: OrgUnit, as_of: datetime | None, hall_as_at: datetime
) -> list[HallScore]:
    """Every hall in the scope with its latest score for the period and its inspections in it, as recorded
    up to `as_of`; its level, ownership and closure as they were at `hall_as_at`."""
    rows = await pool.fetch(
        f"""
        SELECT h.hall_id, {HALL_COLUMNS}, latest.score, inspected.inspections
        FROM halls h
        {hall_at("$5", "$4")}
        LEFT JOIN LATERAL (
            SELECT score FROM score_changes s
            WHERE s.period = $1 AND s.hall_id = h.hall_id AND ($4::timestamptz IS NULL OR s.recorded_at <= $4)
            ORDER BY s.scorecard_version DESC LIMIT 1
        ) latest ON true
        LEFT JOIN LATERAL (
            SELECT count(DISTINCT subject_id) AS inspections FROM score_changes s
            WHERE s.period = $1 AND s.hall_id = h.hall_id AND s.fact->>'kind' = 'inspected'
              AND ($4::timestamptz IS NULL OR s.recorded_at <= $4)
        ) inspected ON true
        WHERE {HALLS_IN_SCOPE}
        """,  # noqa: S608 - the text is a constant
        period,
        *_scope(scope),
        as_of,
        hall_as_at,
    )
    return [
        HallScore(row["hall_id"], row["level"], row["ownership"], row["closed"], row["score"], row["inspections"])
        for row in rows
    ]


async def facts_of_period(
    pool: asyncpg.Pool,
    period: str,
    scope: OrgUnit,
    as_of: datetime | None = None,
    hall_ids: list[str] | None = None,
    hall_as_at: datetime | None = None,
) -> list[HallFacts]:
    """Every hall in the scope (or those of `hall_ids` in it) with the facts its scorecard applied in the
    period, as recorded up to `as_of`; its level, ownership and closure as they were at `hall_as_at` (as
    they are after every change, if None)."""
    rows = await pool.fetch(
        f"""
        SELECT h.hall_id, {HALL_COLUMNS}, s.fact
        FROM halls h
        {hall_at("coalesce($6::timestamptz, 'infinity')", "$4")}
        LEFT JOIN score_changes s ON s.hall_id = h.hall_id AND s.period = $1
            AND ($4::timestamptz IS NULL OR s.recorded_at <= $4)
        WHERE {HALLS_IN_SCOPE} AND ($5::text[] IS NULL OR h.hall_id = ANY($5::text[]))
        ORDER BY h.hall_id, s.scorecard_version
        """,  # noqa: S608 - the text is a constant
        period,
        *_scope(scope),
        as_of,
        hall_ids,
        hall_as_at,
    )
    halls: dict[str, HallFacts] = {}
    for row in rows:
        hall = halls.setdefault(
            row["hall_id"], HallFacts(row["hall_id"], row["level"], row["ownership"], row["closed"])
        )
        if row["fact"] is not None:
            hall.facts.append(SCORING_FACT.validate_json(row["fact"]))
    return list(halls.values())


async def changes_of_hall(pool: asyncpg.Pool, hall_id: str, period: str, as_of: datetime) -> list[ScoreChangeEntry]:
    """The hall's score changes in the period recorded up to `as_of`, in the order applied."""
    rows = await pool.fetch(
        """
        SELECT happened_at, recorded_at, source_event_type, source_event_id, subject_id, fact->>'kind' AS fact,
               policy_version, score_before, score, changes
        FROM score_changes WHERE hall_id = $1 AND period = $2 AND recorded_at <= $3
        ORDER BY scorecard_version
        """,
        hall_id,
        period,
        as_of,
    )
    return [ScoreChangeEntry(**{**dict(row), "changes": json.loads(row["changes"])}) for row in rows]


class Adjustment(ScoreChangeEntry):
    hall_id: str
    period: str


async def changes_after(
    pool: asyncpg.Pool, periods: list[str], hall_ids: list[str], after: datetime
) -> list[Adjustment]:
    """The halls' score changes in the periods recorded after `after`, in the order recorded."""
    rows = await pool.fetch(
        """
        SELECT hall_id, period, happened_at, recorded_at, source_event_type, source_event_id, subject_id,
               fact->>'kind' AS fact, policy_version, score_before, score, changes
        FROM score_changes WHERE period = ANY($1::text[]) AND hall_id = ANY($2::text[]) AND recorded_at > $3
        ORDER BY recorded_at, hall_id, scorecard_version
        """,
        periods,
        hall_ids,
        after,
    )
    return [Adjustment(**{**dict(row), "changes": json.loads(row["changes"])}) for row in rows]
