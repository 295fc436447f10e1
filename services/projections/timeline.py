"""Timelines: every event of a complaint or rectification order, in order, with actor and reason.

A timeline also shows events other services published about its subject (SLA warnings,
breaches and escalations); those have their own aggregate and versions, so entries are
ordered by when they happened.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from shared.consumer import Connection
from shared.contracts import (
    ComplaintDispatchedV1,
    ComplaintRegisteredV1,
    CustomerNotifiedV1,
    InspectionRecordedV1,
    IntegrationEvent,
    RectificationOrderOpenedV1,
    SlaMilestone,
    SlaRecalculatedV1,
)
from shared.organisation import OrgUnit


class TimelineEntry(BaseModel):
    source: str
    version: int
    event_id: uuid.UUID
    type: str
    occurred_at: datetime
    details: dict[str, object]


class Timeline(BaseModel):
    aggregate_id: uuid.UUID
    events: list[TimelineEntry]
    next_cursor: str | None = None  # pass as `after` for the events that follow; None: no more


TIMELINE_PAGE = 500  # events per page unless the caller asks for fewer (or up to MAX_TIMELINE_PAGE)
MAX_TIMELINE_PAGE = 1000


class BadCursor(ValueError):
    pass


def timeline_cursor(entry: TimelineEntry) -> str:
    """Opaque to the caller: where a page ended, in the timeline's order."""
    position = json.dumps([entry.occurred_at.isoformat(), entry.version, str(entry.event_id)])
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def _position(cursor: str) -> tuple[datetime, int, uuid.UUID]:
    try:
        occurred_at, version, event_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(occurred_at), int(version), uuid.UUID(event_id)
    except (ValueError, TypeError) as error:
        raise BadCursor("not a cursor this service gave") from error


async def record_event(connection: Connection, event: IntegrationEvent) -> None:
    await _record(connection, event, event.envelope.aggregate_id)


async def record_notification(connection: Connection, event: IntegrationEvent) -> None:
    """A notification to the customer goes into the timeline of the complaint it told of."""
    notice = event.payload
    if not isinstance(notice, CustomerNotifiedV1):
        raise TypeError(f"{event.event_type} is not a customer notification")
    await _record(connection, event, notice.complaint_id)


async def record_sla_event(connection: Connection, event: IntegrationEvent) -> None:
    """An SLA clock's event goes into the timeline of the complaint or order it measures."""
    clock_event = event.payload
    if not isinstance(clock_event, SlaMilestone | SlaRecalculatedV1):
        raise TypeError(f"{event.event_type} is not an SLA clock's event")
    await _record(connection, event, clock_event.subject_id)


async def _record(connection: Connection, event: IntegrationEvent, timeline_id: uuid.UUID) -> None:
    envelope = event.envelope
    await connection.execute(
        """
        INSERT INTO timelines
            (timeline_id, aggregate_id, aggregate_version, event_id, event_type, source, occurred_at, details)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
        """,
        timeline_id,
        envelope.aggregate_id,
        envelope.aggregate_version,
        envelope.event_id,
        envelope.event_type,
        envelope.source,
        envelope.occurred_at,
        event.payload.model_dump_json(),
    )


async def record_hall_of(connection: Connection, event: IntegrationEvent) -> None:
    """Which hall a timeline belongs to: it decides who may read it."""
    opening = event.payload
    if not isinstance(opening, ComplaintRegisteredV1 | InspectionRecordedV1 | RectificationOrderOpenedV1):
        raise TypeError(f"{event.event_type} opens no timeline")
    await connection.execute(
        "INSERT INTO timeline_halls VALUES ($1, $2) ON CONFLICT (aggregate_id) DO NOTHING",
        event.envelope.aggregate_id,
        opening.hall_id,
    )


async def record_hand_off(connection: Connection, event: IntegrationEvent) -> None:
    """A unit a complaint was handed to may read its timeline, as in the complaints service."""
    dispatched = event.payload
    if not isinstance(dispatched, ComplaintDispatchedV1):
        raise TypeError(f"{event.event_type} hands nothing off")
    with contextlib.suppress(ValueError):  # hand-offs from before units were validated name no unit
        await connection.execute(
            "INSERT INTO timeline_hand_offs VALUES ($1, $2) ON CONFLICT DO NOTHING",
            event.envelope.aggregate_id,
            str(OrgUnit.parse(dispatched.to_unit)),
        )


async def units_of(pool: asyncpg.Pool, aggregate_id: uuid.UUID) -> list[OrgUnit]:
    """The units that may read a timeline (with those above them): its hall's and every hand-off's."""
    row = await pool.fetchrow(
        "SELECT h.province, h.city, h.hall_id FROM timeline_halls t JOIN halls h ON h.hall_id = t.hall_id"
        " WHERE t.aggregate_id = $1",
        aggregate_id,
    )
    if row is None:
        return []
    hand_offs = await pool.fetch("SELECT unit FROM timeline_hand_offs WHERE aggregate_id = $1", aggregate_id)
    return [OrgUnit.of_hall(row["province"], row["city"], row["hall_id"])] + [
        OrgUnit.parse(hand_off["unit"]) for hand_off in hand_offs
    ]


async def load_timeline(
    pool: asyncpg.Pool, aggregate_id: uuid.UUID, limit: int = TIMELINE_PAGE, after: str | None = None
) -> Timeline | None:
    """A page of the timeline, oldest first, after the cursor `after` (from the start without one); None if
    no event of it was seen. Past the last event, a page is empty."""
    start = _position(after) if after is not None else None
    rows = await pool.fetch(
        """
        SELECT source, aggregate_version, event_id, event_type, occurred_at, details
        FROM timelines WHERE timeline_id = $1
          AND ($2::timestamptz IS NULL OR (occurred_at, aggregate_version, event_id) > ($2, $3, $4))
        ORDER BY occurred_at, aggregate_version, event_id LIMIT $5
        """,
        aggregate_id,
        *(start or (None, None, None)),
        limit + 1,
    )
    if not rows and start is None:
        return None
    more = len(rows) > limit
    timeline = Timeline(
        aggregate_id=aggregate_id,
        events=[
            TimelineEntry(
                source=row["source"],
                version=row["aggregate_version"],
                event_id=row["event_id"],
                type=row["event_type"],
                occurred_at=row["occurred_at"],
                details=json.loads(row["details"]),
            )
            for row in rows[:limit]
        ],
    )
    if more:
        timeline.next_cursor = timeline_cursor(timeline.events[-1])
    return timeline
