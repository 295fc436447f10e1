"""Complaint and rectification-order events start, pause, resume and stop the SLA clocks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from services.escalation.application import EscalationApplication, Observation
from services.escalation.repositories import PostgresDeadlines
from services.escalation.tracking import CLOCK_EVENTS, Opening
from shared.consumer import Connection, Delivery, Handling
from shared.contracts import (
    PAUSE_REASON_BEFORE_CODES,
    ComplaintPausedV1,
    ComplaintPausedV2,
    ComplaintReclassifiedV1,
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


def change_of(event: IntegrationEvent) -> Opening | Observation:
    """What a complaint or order event does to its subject's clocks."""
    payload, envelope = event.payload, event.envelope
    if isinstance(payload, ComplaintRegisteredV1):
        return Opening(
            subject_id=envelope.aggregate_id,
            kind="complaint",
            hall=hall_unit(payload),
            started_by=payload.event_type,
            started_at=payload.received_at,
            source_event_id=envelope.event_id,
            category=payload.category,
            priority=payload.priority,
            channel=payload.channel,
        )
    if isinstance(payload, RectificationOrderOpenedV1):
        return Opening(
            subject_id=envelope.aggregate_id,
            kind="rectification_order",
            hall=hall_unit(payload),
            started_by=payload.event_type,
            started_at=payload.at,
            source_event_id=envelope.event_id,
        )
    assert isinstance(payload, LoopStep)
    return Observation(envelope.aggregate_id, envelope.event_id, envelope.event_type, payload.at, detail(payload))


def detail(step: LoopStep) -> dict[str, str]:
    """What of a step, besides its type and instant, moves the clocks (see `Step`)."""
    if isinstance(step, ComplaintPausedV2):
        return {"reason_code": step.reason_code}
    if isinstance(step, ComplaintPausedV1):
        return {"reason_code": PAUSE_REASON_BEFORE_CODES}
    if isinstance(step, ComplaintReclassifiedV1):
        return {"category": step.category, "priority": step.priority, "channel": step.channel}
    return {}


def handling(application: EscalationApplication) -> Handling:
    async def apply(connection: Connection, deliveries: Sequence[Delivery]) -> None:
        changes = [(change_of(delivery.event), delivery.traceparent) for delivery in deliveries]
        await PostgresDeadlines(connection).record(await asyncio.to_thread(application.track, changes))

    steps = {event_type for kind in CLOCK_EVENTS.values() for event_type in kind}
    return Handling(frozenset({ComplaintRegisteredV1.event_type, RectificationOrderOpenedV1.event_type, *steps}), apply)
