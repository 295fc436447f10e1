"""Working-time arithmetic over REST: how much working time lies between two instants, and when a limit falls due."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from services.escalation.calendar import Calendars, UnknownCalendarYear, WorkingCalendar
from services.escalation.policy import Policy
from shared.auth import Caller
from shared.errors import ServiceError
from shared.organisation import OrgUnit
from shared.validation import Instant, TextParam

router = APIRouter(prefix="/api/v1/calendar", tags=["calendar"])
policies_router = APIRouter(prefix="/api/v1/sla", tags=["sla"])


class CalendarRefused(ServiceError):
    status_code = 422
    error_type = "calendar_unavailable"


class WorkingTime(BaseModel):
    start: datetime
    end: datetime
    working_seconds: float


class Deadline(BaseModel):
    start: datetime
    due: datetime


def calendar_for(request: Request, unit: str | None) -> WorkingCalendar:
    calendars: Calendars = request.app.state.calendars
    try:
        return calendars.for_unit(OrgUnit.parse(unit) if unit else None)
    except ValueError as error:
        raise CalendarRefused(str(error), ("query", "unit")) from None


@router.get("/working-time", response_model=WorkingTime)
def working_time(
    request: Request,
    caller: Caller,
    start: Annotated[Instant, Query(alias="from")],
    end: Annotated[Instant, Query(alias="to")],
    unit: Annotated[
        TextParam | None, Query(description="e.g. group/广东/深圳/GD-SZ-001; its business hours apply")
    ] = None,
) -> WorkingTime:
    """Business hours on working days between two instants (statutory holidays and 调休 included)."""
    try:
        elapsed = calendar_for(request, unit).working_time_between(start, end)
    except UnknownCalendarYear as unknown:
        raise CalendarRefused(str(unknown), ("query", "to")) from None
    return WorkingTime(start=start, end=end, working_seconds=elapsed.total_seconds())


@router.get("/deadline", response_model=Deadline)
def deadline(
    request: Request,
    caller: Caller,
    start: Annotated[Instant, Query(alias="from")],
    working_days: Annotated[int | None, Query(ge=0, le=365)] = None,
    working_hours: Annotated[float | None, Query(gt=0, le=10_000)] = None,
    unit: Annotated[
        TextParam | None, Query(description="e.g. group/广东/深圳/GD-SZ-001; its business hours apply")
    ] = None,
) -> Deadline:
    """When a limit of working days or working hours from `from` falls due; give exactly one of the two."""
    if (working_days is None) == (working_hours is None):
        raise CalendarRefused("give exactly one of working_days and working_hours", ("query", "working_days"))
    calendar = calendar_for(request, unit)
    try:
        due = (
            calendar.add_working_days(start, working_days)
            if working_days is not None
            else calendar.add_working_time(start, timedelta(hours=working_hours or 0))
        )
    except UnknownCalendarYear as unknown:
        raise CalendarRefused(str(unknown), ("query", "from")) from None
    return Deadline(start=start, due=due)


@policies_router.get("/policies", response_model=list[Policy])
def policies(request: Request, caller: Caller) -> list[Policy]:
    """Every SLA policy version, oldest effective date first."""
    loaded: list[Policy] = request.app.state.policies
    return loaded
