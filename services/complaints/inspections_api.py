"""REST for inspections and the rectification orders their findings open."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import APIRouter, Request, Response, status

from services.complaints.api import IdempotencyKey, application
from services.complaints.application import FindingInput, RecordInspection, StepRequest, fingerprint_of
from services.complaints.domain import Step
from services.complaints.inspections import RectificationOrder
from services.complaints.schemas import InspectionCreate, InspectionPublic, OrderPublic, OrderRectifyBody, StepBody
from shared.auth import Caller, Principal, Role, require_roles

router = APIRouter(prefix="/api/v1", tags=["inspections"])

INSPECTING = (Role.inspector, Role.quality_manager)
HALL_SIDE = (Role.hall_manager, Role.handler)


@router.post("/inspections", status_code=status.HTTP_201_CREATED, response_model=InspectionPublic)
def record_inspection(
    body: InspectionCreate, request: Request, response: Response, caller: Caller, idempotency_key: IdempotencyKey = None
) -> InspectionPublic:
    """Records an inspection of a hall against the checklist; each finding opens a rectification order."""
    require_roles(caller, *INSPECTING)
    inspection, created = application(request).record_inspection(
        RecordInspection(
            hall_code=body.hall_id,
            inspection_type=body.type,
            failed_items=frozenset(body.failed_items),
            findings=tuple(FindingInput(f.item_id, f.description, f.deadline) for f in body.findings),
            checklist_version=body.checklist_version,
        ),
        caller,
        idempotency_key,
    )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return InspectionPublic.of(inspection)


@router.get("/inspections/{inspection_id}", response_model=InspectionPublic)
def get_inspection(inspection_id: uuid.UUID, request: Request, caller: Caller) -> InspectionPublic:
    return InspectionPublic.of(application(request).get_inspection(inspection_id, caller))


@router.get("/rectification-orders/{order_id}", response_model=OrderPublic)
def get_order(order_id: uuid.UUID, request: Request, caller: Caller) -> OrderPublic:
    return OrderPublic.of(application(request).get_order(order_id, caller))


def order_step(
    action: str,
    order_id: uuid.UUID,
    body: StepBody,
    request: Request,
    response: Response,
    caller: Principal,
    idempotency_key: str | None,
    roles: tuple[Role, ...],
    perform: Callable[[RectificationOrder, Step], None],
) -> OrderPublic:
    require_roles(caller, *roles)
    step_request = StepRequest(
        actor=caller.subject,
        reason=body.reason,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint_of(action, str(order_id), body.model_dump(mode="json")),
    )
    order, created = application(request).act_on_order(order_id, step_request, perform, caller)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return OrderPublic.of(order)


@router.post("/rectification-orders/{order_id}/communicate", response_model=OrderPublic)
def communicate(
    order_id: uuid.UUID,
    body: StepBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> OrderPublic:
    """The inspector communicates the findings to the hall manager (沟通)."""
    return order_step(
        "communicate",
        order_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        INSPECTING,
        lambda order, step: order.communicate(step),
    )


@router.post("/rectification-orders/{order_id}/acknowledge", response_model=OrderPublic)
def acknowledge(
    order_id: uuid.UUID,
    body: StepBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> OrderPublic:
    """The hall manager acknowledges the findings."""
    return order_step(
        "acknowledge",
        order_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        HALL_SIDE,
        lambda order, step: order.acknowledge(step),
    )


@router.post("/rectification-orders/{order_id}/rectify", response_model=OrderPublic)
def rectify(
    order_id: uuid.UUID,
    body: OrderRectifyBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> OrderPublic:
    """The hall reports its rectification (整改报告) with evidence."""
    return order_step(
        "rectify",
        order_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        HALL_SIDE,
        lambda order, step: order.rectify(body.report, body.evidence, step),
    )


@router.post("/rectification-orders/{order_id}/verify", response_model=OrderPublic)
def verify(
    order_id: uuid.UUID,
    body: StepBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> OrderPublic:
    """The inspector verifies the rectification and closes the order."""
    return order_step(
        "verify",
        order_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        INSPECTING,
        lambda order, step: order.verify(step),
    )


@router.post("/rectification-orders/{order_id}/reject", response_model=OrderPublic)
def reject(
    order_id: uuid.UUID,
    body: StepBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> OrderPublic:
    """The inspector rejects the rectification: the hall must rectify again."""
    return order_step(
        "reject",
        order_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        INSPECTING,
        lambda order, step: order.reject(step),
    )
