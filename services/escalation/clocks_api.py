"""The SLA clocks of a complaint or rectification order as they stand now: deadlines, elapsed and remaining."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from services.escalation.application import EscalationApplication
from services.escalation.clocks import MilestoneKind
from services.escalation.policy import Limit
from services.escalation.repositories import RuleChange, RuleChanges
from services.escalation.tracking import ClockPlan, SlaSubject
from shared.auth import Caller
from shared.contracts import ClockName
from shared.errors import ServiceError

router = APIRouter(prefix="/api/v1", tags=["clocks"])


class SubjectNotFound(ServiceError):
    status_code = 404
    error_type = "not_found"


class MilestoneView(BaseModel):
    kind: MilestoneKind  # `raised`: escalated on arrival, as the policy raises its kind of complaint
    fraction: float
    level: int
    target_unit: str | None
    due_at: datetime | None
    fired_at: datetime | None
    provisional: bool  # the due instant lies in a year without holiday data: Monday to Friday was assumed


class ClockView(BaseModel):
    name: ClockName
    state: Literal["running", "paused", "stopped"]
    started_at: datetime
    stopped_at: datetime | None
    limit: Limit
    policy_version: str
    deadline: datetime | None
    elapsed_working_seconds: float
    remaining_working_seconds: float  # negative once overdue
    milestones: list[MilestoneView]


class ClocksView(BaseModel):
    subject_id: uuid.UUID
    kind: Literal["complaint", "rectification_order"]
    hall_id: str
    as_of: datetime
    rules_version: str
    clocks: list[ClockView]


def clock_view(plan: ClockPlan, subject: SlaSubject, now: datetime) -> ClockView:
    clock, calendar = plan.clock, plan.calendar
    elapsed = clock.elapsed(calendar, now)
    return ClockView(
        name=plan.name,
        state="stopped" if clock.stopped_at else "paused" if clock.paused else "running",
        started_at=clock.started_at,
        stopped_at=clock.stopped_at,
        limit=clock.limit,
        policy_version=plan.policy.version,
        deadline=plan.deadline,
        elapsed_working_seconds=elapsed.total_seconds(),
        remaining_working_seconds=(clock.limit.working_time(calendar.working_day) - elapsed).total_seconds(),
        milestones=[
            MilestoneView(
                kind=planned.milestone.kind,
                fraction=planned.milestone.fraction,
                level=planned.milestone.level,
                target_unit=str(planned.milestone.target_unit) if planned.milestone.target_unit else None,
                due_at=planned.milestone.due_at,
                fired_at=subject.fired.get(planned.key),
                provisional=planned.milestone.due_at is not None
                and not calendar.knows_year(planned.milestone.due_at.year),
            )
            for planned in plan.milestones
        ],
    )


def clocks_of(request: Request, caller: Caller, subject_id: uuid.UUID, kind: str) -> ClocksView:
    application: EscalationApplication = request.app.state.escalation
    subject = application.subject(subject_id)
    if subject is None or subject.kind != kind or not caller.can_see(subject.hall):
        raise SubjectNotFound(f"no SLA clocks for {kind.replace('_', ' ')} {subject_id}", ("path", f"{kind}_id"))
    now = application.clock()
    return ClocksView(
        subject_id=subject_id,
        kind=subject.kind,
        hall_id=subject.hall_id,
        as_of=now,
        rules_version=subject.rules_version,
        clocks=[clock_view(plan, subject, now) for plan in subject.plans(application.rules)],
    )


@router.get("/complaints/{complaint_id}/clocks", response_model=ClocksView)
async def complaint_clocks(request: Request, caller: Caller, complaint_id: uuid.UUID) -> ClocksView:
    """Response and resolution clocks: state, deadline, elapsed and remaining working time, each milestone."""
    return await asyncio.to_thread(clocks_of, request, caller, complaint_id, "complaint")


@router.get("/rectification-orders/{rectification_order_id}/clocks", response_model=ClocksView)
async def order_clocks(request: Request, caller: Caller, rectification_order_id: uuid.UUID) -> ClocksView:
    """The rectification clock of an inspection finding's order."""
    return await asyncio.to_thread(clocks_of, request, caller, rectification_order_id, "rectification_order")


@router.get("/sla/rule-changes", response_model=list[RuleChange], tags=["sla"])
async def sla_rule_changes(request: Request, caller: Caller) -> list[RuleChange]:
    """Each change of SLA policies or calendar this service started with, and how many open clocks it moved."""
    rule_changes: RuleChanges = request.app.state.rule_changes
    return await rule_changes.all()
