"""Complaint and rectification-order events start, pause, resume and stop the SLA clocks."""

from __future__ import annotations

import asyncio

import asyncpg

from services.escalation.application import EscalationApplication
from services.escalation.scheduler import record_due
from services.escalation.tracking import CLOCK_EVENTS, Opening
from shared.auth import OrgUnit
from shared.consumer import Connection, Handler, RetryLater
from shared.contracts import (
    ComplaintRegisteredV1,
    HallRegisteredV1,
    IntegrationEvent,
    LoopStep,
    RectificationOrderOpenedV1,
)

HALLS_DDL = """
CREATE TABLE IF NOT EXISTS halls (
    hall_id text PRIMARY KEY,
    province text NOT NULL,
    city text NOT NULL
)
"""


async def create_tables(pool: asyncpg.Pool) -> None:
    await pool.execute(HALLS_DDL)


async def hall_unit(connection: Connection, hall_id: str) -> OrgUnit:
    """Halls come on the same topic but maybe another partition, so a hall may not be known yet."""
    row = await connection.fetchrow("SELECT province, city FROM halls WHERE hall_id = $1", hall_id)
    if row is None:
        raise RetryLater(f"hall {hall_id!r} is not known yet")
    return OrgUnit.of_hall(row["province"], row["city"], hall_id)


def handlers(application: EscalationApplication) -> dict[str, Handler]:
    async def hall_registered(connection: Connection, event: IntegrationEvent) -> None:
        hall = event.payload
        assert isinstance(hall, HallRegisteredV1)
        await connection.execute(
            "INSERT INTO halls VALUES ($1, $2, $3) ON CONFLICT (hall_id) DO NOTHING",
            hall.hall_id,
            hall.province,
            hall.city,
        )

    async def complaint_registered(connection: Connection, event: IntegrationEvent) -> None:
        complaint = event.payload
        assert isinstance(complaint, ComplaintRegisteredV1)
        opening = Opening(
            subject_id=event.envelope.aggregate_id,
            kind="complaint",
            hall=await hall_unit(connection, complaint.hall_id),
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
            hall=await hall_unit(connection, order.hall_id),
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
        HallRegisteredV1.event_type: hall_registered,
        ComplaintRegisteredV1.event_type: complaint_registered,
        RectificationOrderOpenedV1.event_type: order_opened,
        **steps,
    }
