"""REST reads of the projections, limited to the caller's part of the organisation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import TypeAdapter

from services.projections import cursors, incidents, inspections, queues
from services.projections import timeline as timelines
from services.projections.complaints import ComplaintPage, list_complaints
from services.projections.queues import QueuePage, View
from services.projections.timeline import MAX_TIMELINE_PAGE, TIMELINE_PAGE, Timeline, load_timeline, units_of
from shared.auth import Caller, Principal
from shared.catalog import Priority
from shared.errors import ServiceError
from shared.openapi import error_responses
from shared.organisation import OrgUnit
from shared.validation import Instant, TextParam

router = APIRouter(prefix="/api/v1")


class NotProjected(ServiceError):
    status_code = 404
    error_type = "not_found"


class UnitNotFound(ServiceError):
    status_code = 404
    error_type = "not_found"


class BadCursor(ServiceError):
    status_code = 422
    error_type = "bad_cursor"
    field = ("query", "cursor")


PageSize = Annotated[int, Query(ge=1, le=MAX_TIMELINE_PAGE, description="Events per page.")]
After = Annotated[TextParam | None, Query(description="The `next_cursor` of the page before.")]


async def visible_timeline(
    request: Request, caller: Principal, aggregate_id: uuid.UUID, limit: int, after: str | None
) -> Timeline | None:
    pool = request.app.state.pool
    if not any(caller.can_see(unit) for unit in await units_of(pool, aggregate_id)):
        return None
    try:
        return await load_timeline(pool, aggregate_id, limit, after)
    except timelines.BadCursor as bad:
        raise BadCursor(str(bad), ("query", "after")) from None


@router.get("/complaints/{complaint_id}/timeline", response_model=Timeline)
async def complaint_timeline(
    complaint_id: uuid.UUID, request: Request, caller: Caller, limit: PageSize = TIMELINE_PAGE, after: After = None
) -> Timeline:
    """The complaint's events, oldest first, with actor and reason, as far as this projection has seen; a
    page at a time (`next_cursor`)."""
    if (timeline := await visible_timeline(request, caller, complaint_id, limit, after)) is None:
        raise NotProjected(f"no events seen for complaint {complaint_id}", ("path", "complaint_id"))
    return timeline


@router.get("/rectification-orders/{order_id}/timeline", response_model=Timeline)
async def order_timeline(
    order_id: uuid.UUID, request: Request, caller: Caller, limit: PageSize = TIMELINE_PAGE, after: After = None
) -> Timeline:
    """The rectification order's events, oldest first, with actor and reason; a page at a time."""
    if (timeline := await visible_timeline(request, caller, order_id, limit, after)) is None:
        raise NotProjected(f"no events seen for rectification order {order_id}", ("path", "order_id"))
    return timeline


@router.get("/complaints", response_model=ComplaintPage)
async def complaints(
    request: Request,
    caller: Caller,
    hall_id: TextParam | None = None,
    status: Literal["open", "paused", "closed"] | None = None,
    category: TextParam | None = None,
    priority: Priority | None = None,
    repeat: Annotated[
        bool | None, Query(description="Only repeat complaints (重复投诉), or only first ones; both if absent.")
    ] = None,
    incident: Annotated[uuid.UUID | None, Query(description="Only the children of this mass incident.")] = None,
    received_from: Annotated[Instant | None, Query(description="Received at or after this instant.")] = None,
    received_to: Annotated[Instant | None, Query(description="Received before this instant.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[TextParam | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> ComplaintPage:
    """Complaints in the caller's organisation unit, newest first, filtered and paged."""
    return await list_complaints(
        request.app.state.pool,
        visible_prefix=caller.unit.path,
        limit=limit,
        cursor=list_cursor(cursor),
        hall_id=hall_id,
        status=status,
        category=category,
        priority=priority,
        repeat=repeat,
        incident=incident,
        received_from=received_from,
        received_to=received_to,
    )


@router.get("/incidents/{incident_id}/suggestions", response_model=ComplaintPage, tags=["incidents"])
async def incident_suggestions(
    incident_id: uuid.UUID,
    request: Request,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[TextParam | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> ComplaintPage:
    """Complaints that may be the incident's children: open, not linked to any incident, of a hall in its area,
    of its category, received within its window; newest first. Link them with the complaints service's
    `POST /api/v1/incidents/{id}/children`."""
    pool = request.app.state.pool
    area = await incidents.area_of(pool, incident_id)
    if area is None or not caller.can_see(area):
        raise NotProjected(f"no incident {incident_id} seen", ("path", "incident_id"))
    return await incidents.suggestions(pool, incident_id, limit, list_cursor(cursor))


@router.get(
    "/queues/complaints",
    response_model=QueuePage,
    tags=["queues"],
    responses=error_responses(e404="No such unit within the caller's."),
)
async def complaint_queue(
    request: Request,
    caller: Caller,
    view: Annotated[View, Query(description="Which of the unit's queues.")],
    unit: Annotated[
        TextParam | None, Query(description="An organisation unit, e.g. `group/广东/深圳`; the caller's own if none.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[TextParam | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> QueuePage:
    """A unit's work queue, what falls due next first (complaints with no running deadline last), with the
    count of each of its views.

    `owned`, `escalated_to` and `hand_off_pending` are the complaints addressed to the unit itself: it owns
    them, an escalation not yet ended by its clock's stop reached it, or they were dispatched to it and wait
    for its acceptance. `at_risk` (a running clock warned, none breached), `overdue` (a running clock past
    its limit), `callback_needed` (reopened after unsatisfied feedback, no supervisor callback yet) and
    `paused` cover the unit and everything below it. Closed complaints are in no queue. A unit outside the
    caller's is as good as absent (404)."""
    try:
        asked = caller.unit if unit is None else OrgUnit.parse(unit)
    except ValueError as bad:
        raise UnitNotFound(str(bad), ("query", "unit")) from None
    if not caller.can_see(asked):
        raise UnitNotFound(f"no unit {unit!r} within yours", ("query", "unit"))
    position = decode_cursor(cursor) if cursor else None
    return await queues.queue(request.app.state.pool, asked, view, limit, position)


Period = Annotated[TextParam | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="A month, e.g. 2026-11.")]


def decode_cursor(cursor: str) -> tuple[datetime | None, uuid.UUID]:
    try:
        return cursors.decode_cursor(cursor)
    except cursors.BadCursor as bad:
        raise BadCursor(str(bad)) from None


def list_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """A cursor of a list, whose rows all have an instant."""
    if cursor is None:
        return None
    instant, row_id = decode_cursor(cursor)
    try:  # a forged cursor may carry any instant: within the years every instant must lie in, or refused
        return CursorInstant.validate_python(instant), row_id
    except ValueError:  # pydantic's ValidationError included: none, or outside the range
        raise BadCursor("not a cursor returned by this endpoint") from None


CursorInstant = TypeAdapter(Instant)


@router.get("/inspections", response_model=inspections.InspectionPage, tags=["inspections"])
async def list_inspections(
    request: Request,
    caller: Caller,
    hall_id: TextParam | None = None,
    period: Period = None,
    inspection_type: Annotated[inspections.InspectionType | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[TextParam | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> inspections.InspectionPage:
    """Inspections of halls in the caller's organisation unit, newest first, filtered and paged."""
    return await inspections.list_inspections(
        request.app.state.pool,
        caller.unit,
        limit,
        list_cursor(cursor),
        hall_id=hall_id,
        period=period,
        inspection_type=inspection_type,
    )


@router.get("/rectification-orders", response_model=inspections.OrderPage, tags=["inspections"])
async def list_rectification_orders(
    request: Request,
    caller: Caller,
    hall_id: TextParam | None = None,
    period: Period = None,
    status: inspections.OrderStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[TextParam | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> inspections.OrderPage:
    """Rectification orders of halls in the caller's organisation unit, newest first, filtered and paged;
    `period` is the month the order was opened in."""
    return await inspections.list_orders(
        request.app.state.pool, caller.unit, limit, list_cursor(cursor), hall_id=hall_id, period=period, status=status
    )
