"""Grades, scorecards and audit trails over REST, limited to the caller's part of the organisation."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, model_validator

from services.projections import scores
from services.projections.api import NotProjected
from services.projections.scores import Grades, HallGrade, ScoreChangeEntry
from services.projections.what_if import WhatIf, what_if
from shared.auth import Caller, Principal
from shared.errors import ServiceError
from shared.organisation import OrgUnit
from shared.scoring_policy import ScoringPolicy, period_of
from shared.validation import Instant, RequestModel, TextParam

router = APIRouter(prefix="/api/v1", tags=["scores"])
PERIOD = Query(pattern=r"^2\d{3}-(0[1-9]|1[0-2])$", description="A calendar month, e.g. 2026-11.")
SCOPE = Query(description="The evaluation scope: group, group/<province> or group/<province>/<city>.")


class BadScope(ServiceError):
    status_code = 422
    error_type = "bad_scope"
    field = ("query", "scope")


class Scorecard(BaseModel):
    hall_id: str
    period: str
    score: float | None  # None: no event touched this hall in the period
    components: dict[str, float]
    deductions: float
    bonus: float
    changes: list[ScoreChangeEntry]


class Audit(BaseModel):
    """Where the hall stood at an instant, and every recalculation that brought it there."""

    hall_id: str
    as_of: datetime
    period: str
    scope: str
    standing: HallGrade
    changes: list[ScoreChangeEntry]


def visible_scope(caller: Principal, scope: str) -> OrgUnit:
    try:
        unit = OrgUnit.parse(scope)
    except ValueError as error:
        raise BadScope(str(error)) from None
    if len(unit.path) > 2:
        raise BadScope("a scope is the group, a province or a city, not a hall")
    if not caller.can_see(unit):
        raise NotProjected(f"no scope {scope} within your unit {caller.unit}", ("query", "scope"))
    return unit


async def visible_hall(pool: asyncpg.Pool, caller: Principal, hall_id: str) -> OrgUnit:
    row = await pool.fetchrow("SELECT province, city FROM halls WHERE hall_id = $1", hall_id)
    unit = OrgUnit.of_hall(row["province"], row["city"], hall_id) if row else None
    if unit is None or not caller.can_see(unit):
        raise NotProjected(f"no hall {hall_id}", ("path", "hall_id"))
    return unit


@router.get("/grades", response_model=Grades)
async def grades(
    request: Request,
    caller: Caller,
    period: Annotated[str, PERIOD],
    scope: Annotated[TextParam, SCOPE] = "group",
    as_of: Annotated[Instant | None, Query(description="As the platform knew it then.")] = None,
) -> Grades:
    """Every hall in the scope with its score, rank and grade for the period, quotas applied."""
    unit = visible_scope(caller, scope)
    policies: dict[str, ScoringPolicy] = request.app.state.scoring_policies
    return await scores.grades(request.app.state.pool, policies, period, unit, as_of)


@router.get("/halls/{hall_id}/scorecard", response_model=Scorecard)
async def scorecard(request: Request, caller: Caller, hall_id: TextParam, period: Annotated[str, PERIOD]) -> Scorecard:
    """The hall's score for the period, its components, and every change with its cause."""
    pool = request.app.state.pool
    await visible_hall(pool, caller, hall_id)
    changes = await scores.changes_of_hall(pool, hall_id, period)
    latest = await pool.fetchrow(
        "SELECT score, components, deductions, bonus FROM score_changes WHERE hall_id = $1 AND period = $2"
        " ORDER BY scorecard_version DESC LIMIT 1",
        hall_id,
        period,
    )
    return Scorecard(
        hall_id=hall_id,
        period=period,
        score=latest["score"] if latest else None,
        components=json.loads(latest["components"]) if latest else {},
        deductions=latest["deductions"] if latest else 0.0,
        bonus=latest["bonus"] if latest else 0.0,
        changes=changes,
    )


@router.get("/halls/{hall_id}/audit", response_model=Audit)
async def audit(
    request: Request,
    caller: Caller,
    hall_id: TextParam,
    as_of: Annotated[Instant, Query(description="The instant to look back to.")],
    scope: Annotated[TextParam, SCOPE] = "group",
) -> Audit:
    """What the hall's score, rank and grade were at `as_of` (period of that instant), and why."""
    pool = request.app.state.pool
    await visible_hall(pool, caller, hall_id)
    unit = visible_scope(caller, scope)
    period = period_of(as_of)
    try:
        standing = await scores.grades(pool, request.app.state.scoring_policies, period, unit, as_of)
    except scores.NoScoringPolicy as missing:
        raise scores.NoScoringPolicy(str(missing), ("query", "as_of")) from None
    hall = next((h for h in standing.halls if h.hall_id == hall_id), None)
    if hall is None:
        raise NotProjected(f"hall {hall_id} is not in scope {scope}", ("query", "scope"))
    changes = await scores.changes_of_hall(pool, hall_id, period, as_of)
    return Audit(hall_id=hall_id, as_of=as_of, period=period, scope=str(unit), standing=hall, changes=changes)


@router.get("/complaints/{complaint_id}/score-effects", response_model=list[ScoreChangeEntry])
async def score_effects(request: Request, caller: Caller, complaint_id: uuid.UUID) -> list[ScoreChangeEntry]:
    """Every recalculation of the hall's score that this complaint caused, with its effect."""
    pool = request.app.state.pool
    row = await pool.fetchrow("SELECT hall_id FROM complaint_summaries WHERE complaint_id = $1", complaint_id)
    if row is None:
        raise NotProjected(f"no complaint {complaint_id}", ("path", "complaint_id"))
    await visible_hall(pool, caller, row["hall_id"])
    return await scores.changes_of_subject(pool, complaint_id)


class WhatIfRequest(RequestModel):
    """Either a stored policy version or a whole policy document (e.g. a draft of new weights)."""

    policy_version: str | None = None
    policy: ScoringPolicy | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WhatIfRequest:
        if (self.policy_version is None) == (self.policy is None):
            raise ValueError("give exactly one of policy_version and policy")
        return self


class UnknownPolicyVersion(ServiceError):
    status_code = 422
    error_type = "unknown_policy_version"
    field = ("body", "policy_version")


@router.post("/grades/what-if", response_model=WhatIf)
async def grades_what_if(
    request: Request,
    caller: Caller,
    body: WhatIfRequest,
    period: Annotated[str, PERIOD],
    scope: Annotated[TextParam, SCOPE] = "group",
) -> WhatIf:
    """The period's scores and grades replayed under another policy, and every hall that would change.

    Nothing live changes: the replay runs over the recorded facts in memory.
    """
    unit = visible_scope(caller, scope)
    policies: dict[str, ScoringPolicy] = request.app.state.scoring_policies
    policy = body.policy
    if policy is None:
        if body.policy_version not in policies:
            raise UnknownPolicyVersion(f"no scoring policy {body.policy_version!r}; known: {', '.join(policies)}")
        policy = policies[body.policy_version]
    return await what_if(request.app.state.pool, policies, period, unit, policy)
