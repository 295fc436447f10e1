"""Complaint summaries and the hall registry: what `GET /api/v1/complaints` lists and filters, and where
a hall, or a complaint's hall, sits in the organisation (who may read its scores)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from services.projections.cursors import encode_cursor
from shared.consumer import Connection
from shared.contracts import (
    ComplaintDispatchedV1,
    ComplaintEscalatedV1,
    ComplaintHandOffAcceptedV1,
    ComplaintLinkedToIncidentV1,
    ComplaintReclassifiedV1,
    ComplaintRegisteredV1,
    ComplaintRegisteredV3,
    FeedbackReceivedV1,
    HallChangedV1,
    HallRegisteredV1,
    IntegrationEvent,
)
from shared.organisation import OrgUnit

# How each step moves a complaint's status; steps not named leave it as it was.
STATUS_AFTER = {
    "ComplaintClosed": "closed",
    "ComplaintReopened": "open",
    "ComplaintPaused": "paused",
    "ComplaintResumed": "open",
}


class ComplaintSummary(BaseModel):
    id: uuid.UUID
    number: str
    hall_id: str
    channel: str
    category: str
    priority: str
    owner: str
    status: str
    last_step: str
    received_at: datetime
    updated_at: datetime
    repeat_count: int
    incident_id: uuid.UUID | None


class ComplaintPage(BaseModel):
    items: list[ComplaintSummary]
    next_cursor: str | None


async def record_hall(connection: Connection, event: IntegrationEvent) -> None:
    hall = event.payload
    assert isinstance(hall, HallRegisteredV1)
    await connection.execute(
        "INSERT INTO halls VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hall_id) DO NOTHING",
        hall.hall_id,
        hall.name,
        hall.province,
        hall.city,
        hall.level,
        hall.ownership,
    )


async def record_hall_change(connection: Connection, event: IntegrationEvent) -> None:
    """The hall as its latest recorded change leaves it; scoring grades by the hall as it was in each period."""
    change = event.payload
    assert isinstance(change, HallChangedV1)
    await connection.execute(
        """
        UPDATE halls SET name = coalesce($2, name), level = coalesce($3, level),
                         ownership = coalesce($4, ownership), closed = coalesce($5, closed)
        WHERE hall_id = $1
        """,
        change.hall_id,
        change.name,
        change.level,
        change.ownership,
        change.closed,
    )


async def hall_unit(pool: asyncpg.Pool, hall_id: str) -> OrgUnit | None:
    """The hall's place in the organisation; None if it was never registered."""
    row = await pool.fetchrow("SELECT province, city FROM halls WHERE hall_id = $1", hall_id)
    return OrgUnit.of_hall(row["province"], row["city"], hall_id) if row else None


async def hall_of_complaint(pool: asyncpg.Pool, complaint_id: uuid.UUID) -> str | None:
    """The hall the complaint was registered at; None if its registration was never projected."""
    hall_id: str | None = await pool.fetchval(
        "SELECT hall_id FROM complaint_summaries WHERE complaint_id = $1", complaint_id
    )
    return hall_id


async def record_registration(connection: Connection, event: IntegrationEvent) -> None:
    registered = event.payload
    assert isinstance(registered, ComplaintRegisteredV1)
    await connection.execute(
        """
        INSERT INTO complaint_summaries (complaint_id, number, hall_id, channel, category, priority, owner, status,
                                         last_step, received_at, updated_at, version, repeat_count)
        VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10, $11, $12)
        ON CONFLICT (complaint_id) DO NOTHING
        """,
        event.envelope.aggregate_id,
        registered.complaint_number,
        registered.hall_id,
        registered.channel,
        registered.category,
        registered.priority,
        registered.owner,
        event.event_type,
        registered.received_at,
        event.envelope.occurred_at,
        event.envelope.aggregate_version,
        registered.repeat_count if isinstance(registered, ComplaintRegisteredV3) else 0,
    )


async def record_step(connection: Connection, event: IntegrationEvent) -> None:
    """Applies a step only if it is newer than what the summary already shows.

    A callback is owed once a complaint whose latest feedback was unsatisfied is reopened, until it is
    made: as the complaint itself decides (`Complaint.callback_needed`), which refuses the loop meanwhile."""
    envelope, step = event.envelope, event.payload
    owner = step.unit if isinstance(step, ComplaintHandOffAcceptedV1) else None
    dispatched_to = step.to_unit if isinstance(step, ComplaintDispatchedV1) else None
    satisfaction = step.satisfaction if isinstance(step, FeedbackReceivedV1) else None
    escalated = step if isinstance(step, ComplaintEscalatedV1) else None
    reclassified = step if isinstance(step, ComplaintReclassifiedV1) else None
    linked = step.incident_id if isinstance(step, ComplaintLinkedToIncidentV1) else None
    await connection.execute(
        """
        UPDATE complaint_summaries SET
            status = COALESCE($2, status),
            owner = COALESCE($3, owner),
            owner_unit = COALESCE($3, owner_unit),
            last_step = $4,
            updated_at = $5,
            version = $6,
            hand_off_to = CASE WHEN $4 = 'ComplaintHandOffAccepted' THEN NULL ELSE COALESCE($7, hand_off_to) END,
            callback_owed = CASE $4 WHEN 'ComplaintReopened' THEN callback_owed OR satisfaction = 'unsatisfied'
                                    WHEN 'CallbackMade' THEN false ELSE callback_owed END,
            satisfaction = CASE $4 WHEN 'ComplaintReopened' THEN NULL ELSE COALESCE($8, satisfaction) END,
            escalated_level = COALESCE($9, escalated_level),
            escalated_target = COALESCE($10, escalated_target),
            category = COALESCE($11, category),
            priority = COALESCE($12, priority),
            channel = COALESCE($13, channel),
            incident_id = CASE $4 WHEN 'ComplaintLinkedToIncident' THEN $14
                                  WHEN 'ComplaintUnlinkedFromIncident' THEN NULL ELSE incident_id END
        WHERE complaint_id = $1 AND version < $6
        """,
        envelope.aggregate_id,
        STATUS_AFTER.get(envelope.event_type),
        owner,
        envelope.event_type,
        envelope.occurred_at,
        envelope.aggregate_version,
        dispatched_to,
        satisfaction,
        escalated.level if escalated else None,
        escalated.target_unit if escalated else None,
        reclassified.category if reclassified else None,
        reclassified.priority if reclassified else None,
        reclassified.channel if reclassified else None,
        linked,
    )


async def list_complaints(
    pool: asyncpg.Pool,
    *,
    visible_prefix: tuple[str, ...],
    limit: int,
    cursor: tuple[datetime, uuid.UUID] | None = None,
    **filters: Any,
) -> ComplaintPage:
    """Newest first, keyset-paged; only complaints of halls under `visible_prefix` (province, city, hall)
    or handed to a unit under it."""
    conditions = ["TRUE"]
    arguments: list[Any] = []

    def where(sql: str, value: Any) -> None:
        arguments.append(value)
        conditions.append(sql.format(f"${len(arguments)}"))

    if visible_prefix:
        in_halls = []
        for column, segment in zip(("h.province", "h.city", "s.hall_id"), visible_prefix, strict=False):
            arguments.append(segment)
            in_halls.append(f"{column} = ${len(arguments)}")
        arguments.append(str(OrgUnit(visible_prefix)))
        unit = f"${len(arguments)}"
        conditions.append(
            f"(({' AND '.join(in_halls)}) OR EXISTS (SELECT 1 FROM timeline_hand_offs u"  # noqa: S608 - placeholders
            f" WHERE u.aggregate_id = s.complaint_id AND (u.unit = {unit} OR starts_with(u.unit, {unit} || '/'))))"
        )
    for name, column in (
        ("hall_id", "s.hall_id"),
        ("status", "s.status"),
        ("category", "s.category"),
        ("priority", "s.priority"),
    ):
        if filters.get(name) is not None:
            where(f"{column} = {{}}", filters[name])
    if filters.get("incident") is not None:
        where("s.incident_id = {}", filters["incident"])
    if filters.get("unlinked"):
        conditions.append("s.incident_id IS NULL")
    if filters.get("open_only"):
        conditions.append("s.status <> 'closed'")
    if filters.get("repeat") is not None:
        conditions.append("s.repeat_count > 0" if filters["repeat"] else "s.repeat_count = 0")
    if filters.get("received_from") is not None:
        where("s.received_at >= {}", filters["received_from"])
    if filters.get("received_to") is not None:
        where("s.received_at < {}", filters["received_to"])
    if cursor is not None:
        arguments.extend(cursor)
        conditions.append(f"(s.received_at, s.complaint_id) < (${len(arguments) - 1}, ${len(arguments)})")
    arguments.append(limit + 1)
    rows = await pool.fetch(
        f"""
        SELECT s.* FROM complaint_summaries s JOIN halls h ON h.hall_id = s.hall_id
        WHERE {" AND ".join(conditions)}
        ORDER BY s.received_at DESC, s.complaint_id DESC LIMIT ${len(arguments)}
        """,  # noqa: S608 - only placeholders are interpolated
        *arguments,
    )
    items = [
        ComplaintSummary(id=row["complaint_id"], **{k: row[k] for k in ComplaintSummary.model_fields if k != "id"})
        for row in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last.received_at, last.id)
    return ComplaintPage(items=items, next_cursor=next_cursor)
