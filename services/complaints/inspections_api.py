"""REST for inspections and the rectification orders their findings open."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import APIRouter, Request, Response, status

from services.complaints.access import ACCESS
from services.complaints.api import IdempotencyKey, application, mark_replayed
from services.complaints.application import (
    FindingInput,
    HighlightInput,
    RecordInspection,
    StepRequest,
    caller_key,
    fingerprint_of,
    unit_of,
)
from services.complaints.attachments import AttachmentRef
from services.complaints.attachments_api import evidence
from services.complaints.domain import Step
from services.complaints.inspections import RectificationOrder
from services.complaints.schemas import (
    AppealDecisionBody,
    FindingCreate,
    InspectionCreate,
    InspectionPublic,
    OrderPublic,
    OrderRectifyBody,
    StepBody,
)
from shared.auth import Caller, Principal
from shared.organisation import OrgUnit

router = APIRouter(prefix="/api/v1", tags=["inspections"])


@router.post("/inspections", status_code=status.HTTP_201_CREATED, response_model=InspectionPublic)
def record_inspection(
    body: InspectionCreate, request: Request, response: Response, caller: Caller, idempotency_key: IdempotencyKey = None
) -> InspectionPublic:
    """Records an inspection of a hall against the checklist; each finding opens a rectification order. A
    finding's uploaded files (`attachments`, by id) go with its order: whoever sees the hall may read them."""
    ACCESS.require(caller, "inspection.record")
    files = evidence(request)

    def finding_input(index: int, finding: FindingCreate) -> FindingInput:
        field = ("body", "findings", index, "attachments")
        refs = tuple(files.refs_for(finding.attachments, caller, field))
        return FindingInput(finding.item_id, finding.description, finding.deadline, refs)

    def keep_evidence(index: int, order: RectificationOrder, unit: OrgUnit) -> None:
        refs = [AttachmentRef(**file) for file in order.attachments]
        files.link(refs, "rectification_order", order.id, unit, ("body", "findings", index, "attachments"))

    inspection, created = application(request).record_inspection(
        RecordInspection(
            hall_code=body.hall_id,
            inspection_type=body.type,
            failed_items=frozenset(body.failed_items),
            findings=tuple(finding_input(index, finding) for index, finding in enumerate(body.findings)),
            checklist_version=body.checklist_version,
            innovation_rating=body.innovation_rating,
            highlights=tuple(HighlightInput(h.description, h.points) for h in body.highlights),
        ),
        caller,
        idempotency_key,
        keep_evidence,
    )
    mark_replayed(response, created)
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
    perform: Callable[[RectificationOrder, Step], None],
) -> OrderPublic:
    ACCESS.require(caller, f"rectification_order.{action}")
    step_request = StepRequest(
        actor=caller.subject,
        reason=body.reason,
        idempotency_key=None if idempotency_key is None else caller_key("order-step", caller, idempotency_key),
        fingerprint=fingerprint_of(action, str(order_id), body.model_dump(mode="json")),
    )
    order, created = application(request).act_on_order(order_id, step_request, perform, caller)
    mark_replayed(response, created)
    return OrderPublic.of(order)


@router.post("/rectification-orders/{order_id}/rectify", response_model=OrderPublic)
def rectify_order(
    order_id: uuid.UUID,
    body: OrderRectifyBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> OrderPublic:
    """The hall reports its rectification (整改报告) with evidence: references, and uploaded files by id
    (`attachments`), which whoever sees the order's hall may then read."""
    files, complaints = evidence(request), application(request)

    def perform(order: RectificationOrder, step: Step) -> None:
        refs = files.refs_for(body.attachments, caller, ("body", "attachments"))
        order.rectify(body.report, body.evidence, step, [ref.as_event_field() for ref in refs])
        unit = unit_of(complaints.known_hall(order.hall_code))
        files.link(refs, "rectification_order", order.id, unit, ("body", "attachments"))

    return order_step("rectify", order_id, body, request, response, caller, idempotency_key, perform)


@router.post("/rectification-orders/{order_id}/decide-appeal", response_model=OrderPublic)
def decide_appeal(
    order_id: uuid.UUID,
    body: AppealDecisionBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> OrderPublic:
    """A quality manager of a unit above the hall decides the hall's appeal against the finding."""
    deciding = application(request).deciding_unit_for_order(order_id, caller)
    return order_step(
        "decide-appeal",
        order_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        lambda order, step: order.decide_appeal(body.upheld, str(deciding), step),
    )


def add_plain_step(action: str, perform: Callable[[RectificationOrder, Step], None], description: str) -> None:
    """A step whose body is only its reason."""

    def endpoint(
        order_id: uuid.UUID,
        body: StepBody,
        request: Request,
        response: Response,
        caller: Caller,
        idempotency_key: IdempotencyKey = None,
    ) -> OrderPublic:
        return order_step(action, order_id, body, request, response, caller, idempotency_key, perform)

    router.add_api_route(
        f"/rectification-orders/{{order_id}}/{action}",
        endpoint,
        methods=["POST"],
        response_model=OrderPublic,
        name=f"order_{action}",
        operation_id=f"rectification_order_{action}",
        description=description,
    )


for plain_step in (
    ("communicate", RectificationOrder.communicate, "The findings are communicated to the hall (沟通)."),
    ("acknowledge", RectificationOrder.acknowledge, "The hall manager acknowledges the findings."),
    ("verify", RectificationOrder.verify, "The inspector verifies the rectification: closed."),
    ("reject", RectificationOrder.reject, "The inspector rejects it: the hall rectifies again."),
    ("appeal", RectificationOrder.file_appeal, "The hall appeals against the finding (申诉); the unit above decides."),
):
    add_plain_step(*plain_step)
