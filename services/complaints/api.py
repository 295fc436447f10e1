"""REST entry points: parse, call one use case, map errors."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status

from services.complaints.application import ComplaintsApplication, RegisterComplaint, RegisterHall
from services.complaints.schemas import ComplaintCreate, ComplaintPublic, HallCreate, HallPublic

router = APIRouter(prefix="/api/v1")


def application(request: Request) -> ComplaintsApplication:
    app: ComplaintsApplication = request.app.state.complaints
    return app


@router.post("/halls", status_code=status.HTTP_201_CREATED, response_model=HallPublic)
def register_hall(body: HallCreate, request: Request) -> HallPublic:
    """Registers a service hall. Its `hall_id` is the operator's code; registering it twice is a 409."""
    hall = application(request).register_hall(
        RegisterHall(
            hall_code=body.hall_id,
            name=body.name,
            province=body.province,
            city=body.city,
            level=body.level,
            ownership=body.ownership,
        )
    )
    return HallPublic.of(hall)


@router.get("/halls/{hall_id}", response_model=HallPublic)
def get_hall(hall_id: str, request: Request) -> HallPublic:
    return HallPublic.of(application(request).get_hall(hall_id))


@router.post("/complaints", status_code=status.HTTP_201_CREATED, response_model=ComplaintPublic)
def register_complaint(
    body: ComplaintCreate,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> ComplaintPublic:
    """Registers a complaint and returns its id and complaint number.

    Send an `Idempotency-Key` header to make retries safe: a repeat returns the
    same complaint (header `Idempotent-Replayed: true`) and records nothing new.
    """
    complaint, created = application(request).register_complaint(
        RegisterComplaint(
            hall_code=body.hall_id,
            channel=body.channel,
            category=body.category,
            priority=body.priority,
            customer_name=body.customer.name,
            customer_phone=body.customer.phone,
            description=body.description,
            received_by=body.received_by,
            received_at=body.received_at,
        ),
        idempotency_key=idempotency_key,
    )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return ComplaintPublic.of(complaint)


@router.get("/complaints/{complaint_id}", response_model=ComplaintPublic)
def get_complaint(complaint_id: uuid.UUID, request: Request) -> ComplaintPublic:
    return ComplaintPublic.of(application(request).get_complaint(complaint_id))
