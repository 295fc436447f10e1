"""A scope's grades for a period: every hall's latest score (as the platform knew it at an instant, or
now), graded under the policy in force when the period began."""

from __future__ import annotations

import dataclasses
import statistics
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from services.scoring import read_model
from services.scoring.grades import GradedHall, Standing, Status, grade_halls, tied_on_score
from services.scoring.policy import (
    InvalidScoringPolicy,
    ScoringPolicy,
    empty_score,
    months_of,
    period_start,
    scoring_policy_at,
)
from services.scoring.scorecard import PeriodFacts, tie_break_values
from shared.errors import ServiceError
from shared.organisation import OrgUnit


class HallGrade(BaseModel):
    hall_id: str
    score: float
    rank: int | None
    grade: str | None
    status: Status
    dropped_by_quota: bool
    tied_at_boundary: bool  # equal to others on every key where a quota ends: the campaign decides
    ungraded_reason: str | None
    tie_break: dict[str, float] | None  # the tie-break values, for a hall whose score another shares


class Grades(BaseModel):
    period: str
    scope: str
    as_of: datetime | None
    policy_version: str
    graded_halls: int  # the assessed ones: the quota base
    not_assessed_halls: int
    tie_break_keys: list[str]
    excellent_places: int
    good_places: int
    halls: list[HallGrade]


class NoScoringPolicy(ServiceError):
    status_code = 422
    error_type = "no_scoring_policy"
    field = ("query", "period")


def policy_for(policies: dict[str, ScoringPolicy], period: str) -> ScoringPolicy:
    """The policy in force when the period (a month, quarter or year) began."""
    try:
        return scoring_policy_at(policies, period_start(months_of(period)[0]))
    except InvalidScoringPolicy as missing:
        raise NoScoringPolicy(f"period {period}: {missing}") from None


async def standings(
    pool: asyncpg.Pool, policies: dict[str, ScoringPolicy], period: str, scope: OrgUnit, as_of: datetime | None
) -> list[Standing]:
    """Every hall in the scope with its score for the period, and the tie-break values of those whose score
    another shares.

    A month's score is the hall's latest (no change yet: the empty score), under the policy in force when
    the month began. A quarter's or a year's is the mean of its months' scores, its inspections theirs
    summed, its tie-break values the means of theirs; graded under the policy in force when it began.
    """
    months = months_of(period)
    policy = policy_for(policies, period)
    hall_as_at = policy.hall_instant(period)
    monthly: dict[str, list[tuple[read_model.HallScore, float]]] = {}  # each month's row and score, by hall
    for month in months:
        baseline = empty_score(policy_for(policies, month))
        for hall in await read_model.latest_scores(pool, month, scope, as_of, hall_as_at):
            monthly.setdefault(hall.hall_id, []).append((hall, baseline if hall.score is None else hall.score))
    standings = [
        Standing(
            hall_id,
            months_of_hall[0][0].level,
            months_of_hall[0][0].ownership,
            round(statistics.fmean(score for _, score in months_of_hall), 2),
            sum(hall.inspections for hall, _ in months_of_hall),
            closed=months_of_hall[0][0].closed,
        )
        for hall_id, months_of_hall in monthly.items()
    ]
    tied = tied_on_score(standings, policy)
    if not tied or not policy.tie_break:
        return standings
    values: dict[str, list[tuple[float, ...]]] = {}
    for month in months:
        keys_in_order = policy_for(policies, month).model_copy(update={"tie_break": policy.tie_break})
        for hall_facts in await read_model.facts_of_period(pool, month, scope, as_of, sorted(tied)):
            facts = PeriodFacts.of(hall_facts.facts)
            values.setdefault(hall_facts.hall_id, []).append(tie_break_values(facts, keys_in_order))
    tie_break = {
        hall: tuple(round(statistics.fmean(key), 2) for key in zip(*v, strict=True)) for hall, v in values.items()
    }
    return [dataclasses.replace(s, tie_break=tie_break.get(s.hall_id, ())) for s in standings]


async def grades(
    pool: asyncpg.Pool, policies: dict[str, ScoringPolicy], period: str, scope: OrgUnit, as_of: datetime | None
) -> Grades:
    policy = policy_for(policies, period)
    graded: list[GradedHall] = grade_halls(await standings(pool, policies, period, scope, as_of), policy)
    graded_count = sum(hall.status == "graded" for hall in graded)
    return Grades(
        period=period,
        scope=str(scope),
        as_of=as_of,
        policy_version=policy.version,
        graded_halls=graded_count,
        not_assessed_halls=sum(hall.status == "not_assessed" for hall in graded),
        tie_break_keys=list(policy.tie_break),
        excellent_places=int(policy.quotas.excellent * graded_count),
        good_places=int(policy.quotas.good * graded_count),
        halls=[
            HallGrade(
                hall_id=hall.hall_id,
                score=hall.score,
                rank=hall.rank,
                grade=hall.grade,
                status=hall.status,
                dropped_by_quota=hall.dropped_by_quota,
                tied_at_boundary=hall.tied_at_boundary,
                ungraded_reason=hall.ungraded_reason,
                tie_break=dict(zip(policy.tie_break, hall.tie_break, strict=True)) if hall.tie_break else None,
            )
            for hall in graded
        ],
    )
