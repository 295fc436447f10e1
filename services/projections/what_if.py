"""What-if: a period's scores and grades recomputed under another scoring policy, beside the live ones.

Every fact the scoring service applied is kept with its recalculation, so each hall's score
can be replayed under any policy without touching the scoring service or the live grades.
"""

from __future__ import annotations

from collections import defaultdict

import asyncpg
from pydantic import BaseModel

from services.projections.grades import GradedHall, Standing, grade_halls
from services.projections.scores import grades
from shared.contracts import SCORING_FACT
from shared.organisation import OrgUnit
from shared.scorecard import PeriodFacts, score
from shared.scoring_policy import ScoringPolicy, empty_score


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
    rows = await pool.fetch(
        """
        SELECT h.hall_id, h.level, h.ownership, s.fact
        FROM halls h LEFT JOIN score_changes s ON s.hall_id = h.hall_id AND s.period = $1
        WHERE ($2::text IS NULL OR h.province = $2) AND ($3::text IS NULL OR h.city = $3)
        ORDER BY h.hall_id, s.scorecard_version
        """,
        period,
        scope.path[0] if len(scope.path) > 0 else None,
        scope.path[1] if len(scope.path) > 1 else None,
    )
    halls: dict[str, tuple[int, str]] = {}
    facts: defaultdict[str, PeriodFacts] = defaultdict(PeriodFacts)
    for row in rows:
        halls[row["hall_id"]] = (row["level"], row["ownership"])
        if row["fact"] is not None:
            facts[row["hall_id"]].apply(SCORING_FACT.validate_json(row["fact"]))
    baseline = empty_score(policy)
    return [
        Standing(hall_id, level, ownership, score(facts[hall_id], policy).total if hall_id in facts else baseline)
        for hall_id, (level, ownership) in halls.items()
    ]


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
