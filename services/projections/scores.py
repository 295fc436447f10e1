"""Each hall's and complaint's trail of score changes, from the scoring service's recalculations.

Every recalculation is kept, with what caused it; "as of" an instant means as the platform knew
it then: the recalculations recorded up to that instant. Grades apply the scoring policy, so the
scoring service serves them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, TypeAdapter

from shared.consumer import Connection
from shared.contracts import (
    IntegrationEvent,
    ScoreChange,
    ScoreRecalculatedV1,
    ScoreRecalculatedV2,
    ScoreRecalculatedV3,
)


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


@dataclass(frozen=True)
class LatestScore:
    score: float
    components: dict[str, float]
    deductions: float
    bonus: float


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


async def changes_of_hall(pool: asyncpg.Pool, hall_id: str, period: str) -> list[ScoreChangeEntry]:
    rows = await pool.fetch(
        "SELECT * FROM score_changes WHERE hall_id = $1 AND period = $2 ORDER BY scorecard_version", hall_id, period
    )
    return [_entry(row) for row in rows]


async def changes_of_subject(pool: asyncpg.Pool, subject_id: uuid.UUID) -> list[ScoreChangeEntry]:
    # A held fact takes effect at the same instant as the one it waited for: the scorecard's order decides.
    rows = await pool.fetch(
        "SELECT * FROM score_changes WHERE subject_id = $1 ORDER BY recorded_at, scorecard_version", subject_id
    )
    return [_entry(row) for row in rows]


async def latest_score(pool: asyncpg.Pool, hall_id: str, period: str) -> LatestScore | None:
    """The hall's score for the period after its latest recalculation; None if none touched it."""
    row = await pool.fetchrow(
        "SELECT score, components, deductions, bonus FROM score_changes WHERE hall_id = $1 AND period = $2"
        " ORDER BY scorecard_version DESC LIMIT 1",
        hall_id,
        period,
    )
    if row is None:
        return None
    return LatestScore(row["score"], json.loads(row["components"]), row["deductions"], row["bonus"])


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
