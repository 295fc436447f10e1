"""A scope's grades for a period: every hall's latest score (as the platform knew it at an instant, or
now), graded under the policy in force when the period began."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel

from services.scoring import read_model
from services.scoring.grades import GradedHall, Standing, grade_halls
from services.scoring.policy import (
    InvalidScoringPolicy,
    ScoringPolicy,
    empty_score,
    period_start,
    scoring_policy_at,
)
from shared.errors import ServiceError
from shared.organisation import OrgUnit


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


class NoScoringPolicy(ServiceError):
    status_code = 422
    error_type = "no_scoring_policy"
    field = ("query", "period")


def policy_for(policies: dict[str, ScoringPolicy], period: str) -> ScoringPolicy:
    try:
        return scoring_policy_at(policies, period_start(period))
    except InvalidScoringPolicy as missing:
        raise NoScoringPolicy(f"period {period}: {missing}") from None


async def standings(
    pool: asyncpg.Pool, period: str, scope: OrgUnit, policy: ScoringPolicy, as_of: datetime | None
) -> list[Standing]:
    """Every hall in the scope with its latest score for the period; no change yet: the empty score."""
    baseline = empty_score(policy)
    return [
        Standing(hall.hall_id, hall.level, hall.ownership, baseline if hall.score is None else hall.score)
        for hall in await read_model.latest_scores(pool, period, scope, as_of)
    ]


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
