"""Scorecards and a complaint's score effects over REST, limited to the caller's part of the organisation.

Grades, audits and what-ifs apply the scoring policy: the scoring service serves them.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from services.projections import scores
from services.projections.api import NotProjected
from services.projections.complaints import hall_of_complaint, hall_unit
from services.projections.scores import ScoreChangeEntry
from shared.auth import Caller, Principal
from shared.organisation import OrgUnit
from shared.validation import TextParam

router = APIRouter(prefix="/api/v1", tags=["scores"])
PERIOD = Query(pattern=r"^2\d{3}-(0[1-9]|1[0-2])$", description="A calendar month, e.g. 2026-11.")


class Scorecard(BaseModel):
    hall_id: str
    period: str
    score: float | None  # None: no event touched this hall in the period
    components: dict[str, float]
    deductions: float
    bonus: float
    changes: list[ScoreChangeEntry]


async def visible_hall(pool: asyncpg.Pool, caller: Principal, hall_id: str) -> OrgUnit:
    unit = await hall_unit(pool, hall_id)
    if unit is None or not caller.can_see(unit):
        raise NotProjected(f"no hall {hall_id}", ("path", "hall_id"))
    return unit


@router.get("/halls/{hall_id}/scorecard", response_model=Scorecard)
async def scorecard(request: Request, caller: Caller, hall_id: TextParam, period: Annotated[str, PERIOD]) -> Scorecard:
    """The hall's score for the period, its components, and every change with its cause."""
    pool = request.app.state.pool
    await visible_hall(pool, caller, hall_id)
    changes = await scores.changes_of_hall(pool, hall_id, period)
    latest = await scores.latest_score(pool, hall_id, period)
    return Scorecard(
        hall_id=hall_id,
        period=period,
        score=latest.score if latest else None,
        components=latest.components if latest else {},
        deductions=latest.deductions if latest else 0.0,
        bonus=latest.bonus if latest else 0.0,
        changes=changes,
    )


@router.get("/complaints/{complaint_id}/score-effects", response_model=list[ScoreChangeEntry])
async def score_effects(request: Request, caller: Caller, complaint_id: uuid.UUID) -> list[ScoreChangeEntry]:
    """Every recalculation of the hall's score that this complaint caused, with its effect."""
    pool = request.app.state.pool
    hall_id = await hall_of_complaint(pool, complaint_id)
    if hall_id is None:
        raise NotProjected(f"no complaint {complaint_id}", ("path", "complaint_id"))
    await visible_hall(pool, caller, hall_id)
    return await scores.changes_of_subject(pool, complaint_id)
