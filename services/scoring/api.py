"""Grades, audits and what-ifs over REST, limited to the caller's part of the organisation: the reads
that apply the scoring policy's rules, served where those rules live."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, ClassVar

import asyncpg
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, model_validator

from services.scoring import read_model, standings
from services.scoring.attribution import AttributionLine, attribution_lines
from services.scoring.policy import ScoringPolicy
from services.scoring.read_model import ScoreChangeEntry
from services.scoring.standings import Grades, HallGrade
from services.scoring.what_if import WhatIf, what_if
from shared.auth import Caller, Principal, Role, require_roles
from shared.clock import period_of
from shared.errors import ServiceError
from shared.organisation import OrgUnit
from shared.validation import Instant, RequestModel, TextParam

router = APIRouter(prefix="/api/v1", tags=["scores"])
MONTH_PATTERN = r"^2\d{3}-(0[1-9]|1[0-2])$"
PERIOD = Query(pattern=MONTH_PATTERN, description="A calendar month, e.g. 2026-11.")
GRADING_PERIOD_PATTERN = r"^2\d{3}(-(0[1-9]|1[0-2]|Q[1-4]))?$"
GRADING_PERIOD = Query(
    pattern=GRADING_PERIOD_PATTERN,
    description="A calendar month (2026-11), quarter (2026-Q4) or year (2026); China time.",
)
SCOPE = Query(description="The evaluation scope: group, group/<province> or group/<province>/<city>.")


class NotFound(ServiceError):
    status_code = 404
    error_type = "not_found"


class BadScope(ServiceError):
    status_code = 422
    error_type = "bad_scope"
    field = ("query", "scope")


class Audit(BaseModel):
    """Where the hall stood at an instant, and every recalculation that brought it there."""

    hall_id: str
    as_of: datetime
    period: str
    scope: str
    standing: HallGrade
    changes: list[ScoreChangeEntry]


def evaluation_scope(scope: str, field: tuple[str, ...] = BadScope.field) -> OrgUnit:
    """`field`: where the scope was given, for the refusal to name."""
    try:
        unit = OrgUnit.parse(scope)
    except ValueError as error:
        raise BadScope(str(error), field) from None
    if len(unit.path) > 2:
        raise BadScope("a scope is the group, a province or a city, not a hall", field)
    return unit


def visible_scope(caller: Principal, scope: str) -> OrgUnit:
    """A scope the caller oversees."""
    unit = evaluation_scope(scope)
    if not caller.can_see(unit):
        raise NotFound(f"no scope {scope} within your unit {caller.unit}", ("query", "scope"))
    return unit


def ranking_scope(caller: Principal, scope: str) -> OrgUnit:
    """A scope whose ranking the caller may read: one it oversees, or one its own unit is ranked in (a hall
    manager reads the grade its hall holds in its city, province or the group, and not the others')."""
    unit = evaluation_scope(scope)
    if not (caller.can_see(unit) or unit.contains(caller.unit)):
        raise NotFound(f"no scope {scope} above or within your unit {caller.unit}", ("query", "scope"))
    return unit


async def visible_hall(pool: asyncpg.Pool, caller: Principal, hall_id: str) -> OrgUnit:
    unit = await read_model.hall_unit(pool, hall_id)
    if unit is None or not caller.can_see(unit):
        raise NotFound(f"no hall {hall_id}", ("path", "hall_id"))
    return unit


@router.get("/grades", response_model=Grades)
async def grades(
    request: Request,
    caller: Caller,
    period: Annotated[str, GRADING_PERIOD],
    scope: Annotated[TextParam, SCOPE] = "group",
    as_of: Annotated[Instant | None, Query(description="As the platform knew it then.")] = None,
) -> Grades:
    """Every hall in the scope with its score, rank and grade for the period, quotas applied; to a caller
    ranked in the scope but not overseeing it, only the halls of its own unit."""
    unit = ranking_scope(caller, scope)
    policies: dict[str, ScoringPolicy] = request.app.state.policies
    pool = request.app.state.pool
    graded = await standings.grades(pool, policies, period, unit, as_of)
    if caller.can_see(unit):
        return graded
    own = await read_model.halls_within(pool, caller.unit)
    return graded.model_copy(update={"halls": [hall for hall in graded.halls if hall.hall_id in own]})


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
    unit = ranking_scope(caller, scope)
    period = period_of(as_of)
    try:
        standing = await standings.grades(pool, request.app.state.policies, period, unit, as_of)
    except standings.NoScoringPolicy as missing:
        raise standings.NoScoringPolicy(str(missing), ("query", "as_of")) from None
    hall = next((h for h in standing.halls if h.hall_id == hall_id), None)
    if hall is None:
        raise NotFound(f"hall {hall_id} is not in scope {scope} as of {as_of.isoformat()}", ("query", "scope"))
    changes = await read_model.changes_of_hall(pool, hall_id, period, as_of)
    return Audit(hall_id=hall_id, as_of=as_of, period=period, scope=str(unit), standing=hall, changes=changes)


class Attribution(BaseModel):
    period: str
    scope: str
    lines: list[AttributionLine]


@router.get("/attribution", response_model=Attribution)
async def attribution(
    request: Request,
    caller: Caller,
    period: Annotated[str, GRADING_PERIOD],
    scope: Annotated[TextParam, SCOPE] = "group",
) -> Attribution:
    """The complaints of the scope that the policy's attribution put on a unit above the hall or on a
    department rather than on the hall that received them: one line per bearer and responsible unit."""
    unit = visible_scope(caller, scope)
    lines = await attribution_lines(request.app.state.pool, request.app.state.policies, period, unit)
    return Attribution(period=period, scope=str(unit), lines=lines)


class WhatIfRequest(RequestModel):
    """Either a stored policy version or a whole policy document (e.g. a draft of new weights)."""

    policy_version: str | None = None
    policy: ScoringPolicy | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WhatIfRequest:
        if (self.policy_version is None) == (self.policy is None):
            raise ValueError("give exactly one of policy_version and policy")
        return self


WHAT_IF_SECONDS = 20.0


class WhatIfBusy(ServiceError):
    status_code = 429
    error_type = "busy"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "5"}


class WhatIfTooLong(ServiceError):
    status_code = 503
    error_type = "timeout"


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

    Nothing live changes: the replay runs over the recorded facts in memory. For quality managers; one
    what-if at a time per replica (429 while one runs), for at most `WHAT_IF_SECONDS` (503 beyond).
    """
    require_roles(caller, Role.quality_manager)
    unit = visible_scope(caller, scope)
    policies: dict[str, ScoringPolicy] = request.app.state.policies
    policy = body.policy
    if policy is None:
        if body.policy_version not in policies:
            raise UnknownPolicyVersion(f"no scoring policy {body.policy_version!r}; known: {', '.join(policies)}")
        policy = policies[body.policy_version]
    running: asyncio.Semaphore = request.app.state.what_ifs
    if running.locked():
        raise WhatIfBusy("another what-if is running on this replica: try again in a few seconds")
    async with running:
        try:
            return await asyncio.wait_for(
                what_if(request.app.state.pool, policies, period, unit, policy), WHAT_IF_SECONDS
            )
        except TimeoutError:
            raise WhatIfTooLong(f"the what-if took longer than {WHAT_IF_SECONDS:.0f} s: narrow the scope") from None
