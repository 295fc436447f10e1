"""Who bore the period's complaints that the halls did not: the report line of each unit above a hall
and each department (e.g. the network department) the scoring policy attributes a root cause to."""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from services.scoring import read_model
from services.scoring.policy import ScoringPolicy, months_of
from services.scoring.scorecard import PeriodFacts
from services.scoring.standings import policy_for
from shared.organisation import OrgUnit


class AttributionLine(BaseModel):
    bearer: str  # `unit_above` or `department:<name>`, as the policy attributes the root cause's class
    responsible_unit: str | None  # as the check named it
    root_cause_class: str
    complaints: int
    substantiated: int
    halls: list[str]  # where they were received


# Each month's policy, and each hall's facts of that month as the scorecards applied them.
MonthFacts = tuple[ScoringPolicy, list[tuple[str, PeriodFacts]]]


async def attribution_lines(
    pool: asyncpg.Pool, policies: dict[str, ScoringPolicy], period: str, scope: OrgUnit
) -> list[AttributionLine]:
    """The scope's checked complaints in the period whose class the policy (of each month) does not have the
    hall bear, by bearer, responsible unit and class."""
    months = []
    for month in months_of(period):
        halls = await read_model.facts_of_period(pool, month, scope)
        months.append((policy_for(policies, month), [(hall.hall_id, PeriodFacts.of(hall.facts)) for hall in halls]))
    return lines_of(months)


def lines_of(months: list[MonthFacts]) -> list[AttributionLine]:
    lines: dict[tuple[str, str | None, str], tuple[int, int, set[str]]] = {}
    for policy, halls in months:
        for hall_id, facts in halls:
            for complaint in facts.complaints.values():
                cause = complaint.root_cause_class
                if not complaint.registered or cause is None or cause in policy.hall_bears:
                    continue
                key = (policy.attribution[cause], complaint.responsible_unit, cause)
                count, substantiated, where = lines.get(key, (0, 0, set()))
                lines[key] = (count + 1, substantiated + complaint.substantiated, where | {hall_id})
    return [
        AttributionLine(
            bearer=bearer,
            responsible_unit=unit,
            root_cause_class=cause,
            complaints=count,
            substantiated=substantiated,
            halls=sorted(halls),
        )
        for (bearer, unit, cause), (count, substantiated, halls) in sorted(
            lines.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2])
        )
    ]
