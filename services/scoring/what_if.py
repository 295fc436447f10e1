"""What-if: a period's scores and grades recomputed under another scoring policy, beside the live ones.

Every fact a scorecard applied is kept with its recalculation (`read_model.score_changes`), so
each hall's score can be replayed under any policy without touching the scorecards or the live
grades.
"""

from __future__ import annotations

import asyncio

import asyncpg
from pydantic import BaseModel

from services.scoring import read_model
from services.scoring.grades import GradedHall, Standing, grade_halls
from services.scoring.policy import ScoringPolicy, empty_score
from services.scoring.scorecard import PeriodFacts, score, tie_break_values
from services.scoring.standings import grades
from shared.organisation import OrgUnit


class GradeDifference(BaseModel):
    hall_id: str
    live_score: float
    live_grade: str | None
    what_if_score: float
    what_if_grade: str | None


class WhatIf(BaseModel):
    period: str
    scope: str
    live_policy_version: str
    what_if_policy_version: str
    halls_compared: int
    changed_grades: int
    differences: list[GradeDifference]  # every hall whose score or grade would change


async def replayed_standings(pool: asyncpg.Pool, period: str, scope: OrgUnit, policy: ScoringPolicy) -> list[Standing]:
    """Every hall in the scope with the score its period's facts earn under `policy`; the replay runs in a
    worker thread, so that the service answers other requests meanwhile."""
    halls = await read_model.facts_of_period(pool, period, scope, hall_as_at=policy.hall_instant(period))
    return await asyncio.to_thread(_replayed, halls, policy)


def _replayed(halls: list[read_model.HallFacts], policy: ScoringPolicy) -> list[Standing]:
    baseline = empty_score(policy)
    standings = []
    for hall in halls:
        facts = PeriodFacts.of(hall.facts)
        standings.append(
            Standing(
                hall.hall_id,
                hall.level,
                hall.ownership,
                score(facts, policy).total if hall.facts else baseline,
                len(facts.inspections),
                tie_break_values(facts, policy),
                hall.closed,
            )
        )
    return standings


async def what_if(
    pool: asyncpg.Pool, live_policies: dict[str, ScoringPolicy], period: str, scope: OrgUnit, policy: ScoringPolicy
) -> WhatIf:
    live = await grades(pool, live_policies, period, scope, as_of=None)
    hypothetical: dict[str, GradedHall] = {
        hall.hall_id: hall for hall in grade_halls(await replayed_standings(pool, period, scope, policy), policy)
    }
    compared = [(hall, hypothetical[hall.hall_id]) for hall in live.halls if hall.hall_id in hypothetical]
    differences = [
        GradeDifference(
            hall_id=hall.hall_id,
            live_score=hall.score,
            live_grade=hall.grade,
            what_if_score=other.score,
            what_if_grade=other.grade,
        )
        for hall, other in compared
        if (hall.score, hall.grade) != (other.score, other.grade)
    ]
    return WhatIf(
        period=period,
        scope=str(scope),
        live_policy_version=live.policy_version,
        what_if_policy_version=policy.version,
        halls_compared=len(compared),
        changed_grades=sum(d.live_grade != d.what_if_grade for d in differences),
        differences=differences,
    )
