"""Complaint and rectification-order events start, pause, resume and stop the SLA clocks."""

from __future__ import annotations

import asyncio

from services.escalation.application import EscalationApplication
from services.escalation.scheduler import record_due
from services.escalation.tracking import CLOCK_EVENTS, Opening
from shared.consumer import Connection, Handler
from shared.contracts import (
    ComplaintRegisteredV1,
    ComplaintRegisteredV2,
    Contract,
    IntegrationEvent,
    InvalidEvent,
    LoopStep,
    RectificationOrderOpenedV1,
    RectificationOrderOpenedV2,
)
from shared.organisation import OrgUnit


def hall_unit(opening: Contract) -> OrgUnit:
    """Version 1 did not say where the hall sits; without that, deadlines and targets cannot be set."""
    if not isinstance(opening, ComplaintRegisteredV2 | RectificationOrderOpenedV2):
        raise InvalidEvent(
            f"{opening.event_type} v{opening.schema_version} lacks the hall's province and city; v2 has them"
        )
    return OrgUnit.of_hall(opening.province, opening.city, opening.hall_id)


def handlers(application: EscalationApplication) -> dict[str, Handler]:
    async def complaint_registered(connection: Connection, event: IntegrationEvent) -> None:
        complaint = event.payload
        assert isinstance(complaint, ComplaintRegisteredV1)
        opening = Opening(
            subject_id=event.envelope.aggregate_id,
            kind="complaint",
            hall=hall_unit(complaint),
            started_by=complaint.event_type,
            started_at=complaint.received_at,
            source_event_id=event.envelope.event_id,
            category=complaint.category,
            priority=complaint.priority,
            channel=complaint.channel,
        )
        await record_due(connection, [await asyncio.to_thread(application.open, opening)])

    async def order_opened(connection: Connection, event: IntegrationEvent) -> None:
        order = event.payload
        assert isinstance(order, RectificationOrderOpenedV1)
        opening = Opening(
            subject_id=event.envelope.aggregate_id,
            kind="rectification_order",
            hall=hall_unit(order),
            started_by=order.event_type,
            started_at=order.at,
            source_event_id=event.envelope.event_id,
        )
        await record_due(connection, [await asyncio.to_thread(application.open, opening)])

    async def clock_step(connection: Connection, event: IntegrationEvent) -> None:
        step = event.payload
        assert isinstance(step, LoopStep)
        envelope = event.envelope
        due = await asyncio.to_thread(
            application.observe, envelope.aggregate_id, envelope.event_id, envelope.event_type, step.at
        )
        await record_due(connection, [due])

    steps = {event_type: clock_step for kind in CLOCK_EVENTS.values() for event_type in kind}
    return {
        ComplaintRegisteredV1.event_type: complaint_registered,
        RectificationOrderOpenedV1.event_type: order_opened,
        **steps,
    }
