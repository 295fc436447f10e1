"""Hall scores, grades and audit trails, from the scoring service's recalculations.

Every recalculation is kept, so any past state can be rebuilt. "As of" an instant means as
the platform knew it then: the recalculations recorded up to that instant.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, TypeAdapter

from services.projections.grades import GradedHall, Standing, grade_halls
from shared.consumer import Connection
from shared.contracts import (
    IntegrationEvent,
    ScoreChange,
    ScoreRecalculatedV1,
    ScoreRecalculatedV2,
    ScoreRecalculatedV3,
)
from shared.errors import ServiceError
from shared.organisation import OrgUnit
from shared.scoring_policy import InvalidScoringPolicy, ScoringPolicy, empty_score, period_start, scoring_policy_at

SCORES_DDL = """
CREATE TABLE IF NOT EXISTS score_changes (
    event_id uuid PRIMARY KEY,
    scorecard_version integer NOT NULL,
    hall_id text NOT NULL,
    period text NOT NULL,
    subject_id uuid NOT NULL,
    fact jsonb NOT NULL,
    source_event_id uuid NOT NULL,
    source_event_type text NOT NULL,
    policy_version text NOT NULL,
    score_before double precision NOT NULL,
    score double precision NOT NULL,
    components jsonb NOT NULL,
    deductions double precision NOT NULL,
    changes jsonb NOT NULL,
    happened_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    bonus double precision NOT NULL DEFAULT 0
);
-- Read models made before bonus points existed.
ALTER TABLE score_changes ADD COLUMN IF NOT EXISTS bonus double precision NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS score_changes_by_hall ON score_changes (period, hall_id, scorecard_version);
CREATE INDEX IF NOT EXISTS score_changes_by_subject ON score_changes (subject_id);
"""


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


class HallGrade(BaseModel):
    hall_id: str
    score: float
    rank: int | None
    grade: str | None
    dropped_by_quota: bool
    ungraded_reason: str | None


class Grades(BaseModel):
    period: str
    scope: str
    as_of: datetime | None
    policy_version: str
    graded_halls: int
    excellent_places: int
    good_places: int
    halls: list[HallGrade]


async def create_tables(pool: asyncpg.Pool) -> None:
    await pool.execute(SCORES_DDL)


# The JSON columns, through pydantic's serializer: a third of the time of json.dumps, on a rebuild's millions of rows.
UNTYPED_FACT_JSON = TypeAdapter(dict[str, str | bool | int | float])
COMPONENTS_JSON = TypeAdapter(dict[str, float])
CHANGES_JSON = TypeAdapter(list[ScoreChange])


async def record_score_change(connection: Connection, event: IntegrationEvent) -> None:
    change = event.payload
    if isinstance(change, ScoreRecalculatedV3):
        fact = change.fact.model_dump_json()
    elif isinstance(change, ScoreRecalculatedV1):
        fact = UNTYPED_FACT_JSON.dump_json(change.fact).decode()
    else:
        raise TypeError(f"{event.event_type} is not a score change")
    await connection.execute(
        """
        INSERT INTO score_changes (
            event_id, scorecard_version, hall_id, period, subject_id, fact, source_event_id, source_event_type,
            policy_version, score_before, score, components, deductions, changes, happened_at, recorded_at, bonus
        )
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12::jsonb, $13, $14::jsonb, $15, $16, $17)
        """,
        event.envelope.event_id,
        event.envelope.aggregate_version,
        change.hall_id,
        change.period,
        change.subject_id,
        fact,
        change.source_event_id,
        change.source_event_type,
        change.policy_version,
        change.score_before,
        change.score,
        COMPONENTS_JSON.dump_json(change.components).decode(),
        change.deductions,
        CHANGES_JSON.dump_json(change.changes).decode(),
        change.at,
        event.envelope.occurred_at,
        change.bonus if isinstance(change, ScoreRecalculatedV2 | ScoreRecalculatedV3) else 0.0,
    )


async def standings(
    pool: asyncpg.Pool, period: str, scope: OrgUnit, policy: ScoringPolicy, as_of: datetime | None
) -> list[Standing]:
    """Every hall in the scope with its latest score for the period (as of `as_of`); no events: the empty score."""
    rows = await pool.fetch(
        """
        SELECT h.hall_id, h.level, h.ownership, latest.score
        FROM halls h
        LEFT JOIN LATERAL (
            SELECT score FROM score_changes s
            WHERE s.period = $1 AND s.hall_id = h.hall_id AND ($4::timestamptz IS NULL OR s.recorded_at <= $4)
            ORDER BY s.scorecard_version DESC LIMIT 1
        ) latest ON true
        WHERE ($2::text IS NULL OR h.province = $2) AND ($3::text IS NULL OR h.city = $3)
        """,
        period,
        scope.path[0] if len(scope.path) > 0 else None,
        scope.path[1] if len(scope.path) > 1 else None,
        as_of,
    )
    baseline = empty_score(policy)
    return [
        Standing(row["hall_id"], row["level"], row["ownership"], baseline if row["score"] is None else row["score"])
        for row in rows
    ]


class NoScoringPolicy(ServiceError):
    status_code = 422
    error_type = "no_scoring_policy"
    field = ("query", "period")


def policy_for(policies: dict[str, ScoringPolicy], period: str) -> ScoringPolicy:
    try:
        return scoring_policy_at(policies, period_start(period))
    except InvalidScoringPolicy as missing:
        raise NoScoringPolicy(f"period {period}: {missing}") from None


async def grades(
    pool: asyncpg.Pool, policies: dict[str, ScoringPolicy], period: str, scope: OrgUnit, as_of: datetime | None
) -> Grades:
    policy = policy_for(policies, period)
    graded: list[GradedHall] = grade_halls(await standings(pool, period, scope, policy, as_of), policy)
    graded_count = sum(hall.grade is not None for hall in graded)
    return Grades(
        period=period,
        scope=str(scope),
        as_of=as_of,
        policy_version=policy.version,
        graded_halls=graded_count,
        excellent_places=int(policy.quotas.excellent * graded_count),
        good_places=int(policy.quotas.good * graded_count),
        halls=[
            HallGrade(
                hall_id=hall.hall_id,
                score=hall.score,
                rank=hall.rank,
                grade=hall.grade,
                dropped_by_quota=hall.dropped_by_quota,
                ungraded_reason=hall.ungraded_reason,
            )
            for hall in graded
        ],
    )


async def changes_of_hall(
    pool: asyncpg.Pool, hall_id: str, period: str, as_of: datetime | None = None
) -> list[ScoreChangeEntry]:
    rows = await pool.fetch(
        """
        SELECT * FROM score_changes
        WHERE hall_id = $1 AND period = $2 AND ($3::timestamptz IS NULL OR recorded_at <= $3)
        ORDER BY scorecard_version
        """,
        hall_id,
        period,
        as_of,
    )
    return [_entry(row) for row in rows]


async def changes_of_subject(pool: asyncpg.Pool, subject_id: uuid.UUID) -> list[ScoreChangeEntry]:
    # A held fact takes effect at the same instant as the one it waited for: the scorecard's order decides.
    rows = await pool.fetch(
        "SELECT * FROM score_changes WHERE subject_id = $1 ORDER BY recorded_at, scorecard_version", subject_id
    )
    return [_entry(row) for row in rows]


def _entry(row: asyncpg.Record) -> ScoreChangeEntry:
    return ScoreChangeEntry(
        happened_at=row["happened_at"],
        recorded_at=row["recorded_at"],
        source_event_type=row["source_event_type"],
        source_event_id=row["source_event_id"],
        subject_id=row["subject_id"],
        fact=json.loads(row["fact"])["kind"],
        policy_version=row["policy_version"],
        score_before=row["score_before"],
        score=row["score"],
        changes=json.loads(row["changes"]),
    )
