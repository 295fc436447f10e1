"""Turns the complaints event store into messages for the relay: internal events → contracts."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from eventsourcing.domain import DomainEventProtocol

from services.complaints.application import ComplaintsApplication
from services.complaints.domain import UNRECORDED_FEEDBACK_SOURCE, Complaint, Hall
from services.complaints.incidents import Incident
from services.complaints.inspections import Inspection, RectificationOrder
from shared.contracts import (
    CallbackMadeV1,
    ComplaintAcknowledgedV2,
    ComplaintCheckedV3,
    ComplaintCheckReviewedV1,
    ComplaintClosedV2,
    ComplaintDispatchedV1,
    ComplaintEscalatedV1,
    ComplaintHandOffAcceptedV1,
    ComplaintLinkedToIncidentV1,
    ComplaintPauseApprovedV1,
    ComplaintPausedV3,
    ComplaintReclassifiedV1,
    ComplaintRectifiedV3,
    ComplaintRegisteredV3,
    ComplaintReopenedV1,
    ComplaintResolvedOnSpotV1,
    ComplaintResumedV2,
    ComplaintUnlinkedFromIncidentV1,
    Contract,
    CustomerContactedV2,
    CustomerErasedV1,
    CustomerNotifiedV1,
    FeedbackReceivedV2,
    HallChangedV1,
    HallRegisteredV1,
    IncidentOpenedV1,
    InspectionRecordedV2,
    LoopStep,
    NotificationFailedV1,
    OrderAcknowledgedV1,
    OrderAppealDecidedV1,
    OrderAppealedV1,
    OrderCommunicatedV1,
    OrderRectifiedV2,
    OrderRejectedV1,
    OrderVerifiedV1,
    RectificationOrderOpenedV3,
)
from shared.outbox import EventStoreOutbox

SOURCE = "complaints"

# Internal step events whose fields the contracts copy by name.
STEP_CONTRACTS: dict[str, type[LoopStep]] = {
    "Complaint.ResolvedOnSpot": ComplaintResolvedOnSpotV1,
    "Complaint.Dispatched": ComplaintDispatchedV1,
    "Complaint.HandOffAccepted": ComplaintHandOffAcceptedV1,
    "Complaint.Acknowledged": ComplaintAcknowledgedV2,
    "Complaint.Checked": ComplaintCheckedV3,
    "Complaint.CheckReviewed": ComplaintCheckReviewedV1,
    "Complaint.CustomerContacted": CustomerContactedV2,
    "Complaint.Rectified": ComplaintRectifiedV3,
    "Complaint.FeedbackReceived": FeedbackReceivedV2,
    "Complaint.Closed": ComplaintClosedV2,
    "Complaint.Reopened": ComplaintReopenedV1,
    "Complaint.CallbackMade": CallbackMadeV1,
    "Complaint.Paused": ComplaintPausedV3,
    "Complaint.Reclassified": ComplaintReclassifiedV1,
    "Complaint.PauseApproved": ComplaintPauseApprovedV1,
    "Complaint.Resumed": ComplaintResumedV2,
    "Complaint.LinkedToIncident": ComplaintLinkedToIncidentV1,
    "Complaint.UnlinkedFromIncident": ComplaintUnlinkedFromIncidentV1,
    "Complaint.Escalated": ComplaintEscalatedV1,
    "Complaint.CustomerErased": CustomerErasedV1,
    "RectificationOrder.Appealed": OrderAppealedV1,
    "RectificationOrder.AppealDecided": OrderAppealDecidedV1,
    "RectificationOrder.Communicated": OrderCommunicatedV1,
    "RectificationOrder.Acknowledged": OrderAcknowledgedV1,
    "RectificationOrder.Rectified": OrderRectifiedV2,
    "RectificationOrder.Verified": OrderVerifiedV1,
    "RectificationOrder.Rejected": OrderRejectedV1,
}
# What the customer was told, beside the loop; the contracts copy fields by name too (the key stays internal).
NOTIFICATION_CONTRACTS: dict[str, type[Contract]] = {
    "CustomerNotifications.Notified": CustomerNotifiedV1,
    "CustomerNotifications.Failed": NotificationFailedV1,
}


HallOf = Callable[[str], Awaitable[Hall]]


async def to_contract(domain_event: DomainEventProtocol[uuid.UUID], hall_of: HallOf) -> Contract | None:
    """The published form of an internal event, or None if it stays internal."""
    if isinstance(domain_event, Hall.Registered):
        return HallRegisteredV1(
            hall_id=domain_event.hall_code,
            name=domain_event.name,
            province=domain_event.province,
            city=domain_event.city,
            level=domain_event.level,
            ownership=domain_event.ownership,
        )
    if type(domain_event).__qualname__ == "Hall.Changed":
        # The contract names the hall by its code, as `hall_id`.
        source = {name: "hall_code" if name == "hall_id" else name for name in HallChangedV1.model_fields}
        return HallChangedV1.model_validate({name: getattr(domain_event, field) for name, field in source.items()})
    if isinstance(domain_event, Complaint.Registered):
        hall = await hall_of(domain_event.hall_code)
        return ComplaintRegisteredV3(
            repeat_count=domain_event.repeat_count,
            province=hall.province,
            city=hall.city,
            complaint_number=domain_event.number,
            hall_id=domain_event.hall_code,
            channel=domain_event.channel,
            category=domain_event.category,
            priority=domain_event.priority,
            owner=domain_event.received_by,
            received_at=domain_event.received_at,
        )
    if isinstance(domain_event, Incident.Opened):
        return IncidentOpenedV1(
            cause=domain_event.cause,
            area=domain_event.area,
            category=domain_event.category,
            window_start=domain_event.window_start,
            window_end=domain_event.window_end,
            opened_by=domain_event.opened_by,
            at=domain_event.at,
        )
    if isinstance(domain_event, Inspection.Recorded):
        return InspectionRecordedV2(
            hall_id=domain_event.hall_code,
            inspection_type=domain_event.inspection_type,
            inspector=domain_event.inspector,
            checklist_version=domain_event.checklist_version,
            score=domain_event.score,
            max_score=domain_event.max_score,
            results=domain_event.results,
            findings=domain_event.findings,
            innovation_rating=domain_event.innovation_rating,
            highlights=domain_event.highlights,
            at=domain_event.at,
        )
    if isinstance(domain_event, RectificationOrder.Opened):
        hall = await hall_of(domain_event.hall_code)
        return RectificationOrderOpenedV3(
            province=hall.province,
            city=hall.city,
            inspection_id=domain_event.inspection_id,
            hall_id=domain_event.hall_code,
            item_id=domain_event.item_id,
            points=domain_event.points,
            description=domain_event.description,
            deadline=domain_event.deadline,
            at=domain_event.at,
            attachments=domain_event.attachments,
        )
    name = type(domain_event).__qualname__
    step_contract: type[Contract] | None = STEP_CONTRACTS.get(name) or NOTIFICATION_CONTRACTS.get(name)
    if step_contract is not None:
        # A field an older stored event lacks takes the contract's default for it.
        fields = {
            name: getattr(domain_event, name)
            for name in step_contract.model_fields
            if name != "source" and hasattr(domain_event, name)
        }
        if step_contract is FeedbackReceivedV2:
            fields["source"] = getattr(domain_event, "source", UNRECORDED_FEEDBACK_SOURCE)
        return step_contract.model_validate(fields)
    return None


def complaints_outbox(application: ComplaintsApplication, pool: asyncpg.Pool) -> EventStoreOutbox:
    return EventStoreOutbox(
        application, pool, functools.partial(to_contract, hall_of=application.hall_referred_to), SOURCE
    )
