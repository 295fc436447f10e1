"""Mass incidents as the read side knows them, to suggest their children: the open complaints of the area and
category received within the window, not yet linked (`GET /api/v1/incidents/{id}/suggestions`)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from services.projections.complaints import ComplaintPage, list_complaints
from shared.consumer import Connection
from shared.contracts import IncidentOpenedV1, IntegrationEvent
from shared.organisation import OrgUnit


async def record_incident(connection: Connection, event: IntegrationEvent) -> None:
    opened = event.payload
    assert isinstance(opened, IncidentOpenedV1)
    await connection.execute(
        "INSERT INTO incidents VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (incident_id) DO NOTHING",
        event.envelope.aggregate_id,
        opened.area,
        opened.category,
        opened.window_start,
        opened.window_end,
        opened.at,
    )


async def area_of(pool: asyncpg.Pool, incident_id: uuid.UUID) -> OrgUnit | None:
    area = await pool.fetchval("SELECT area FROM incidents WHERE incident_id = $1", incident_id)
    return OrgUnit.parse(area) if area is not None else None


async def suggestions(
    pool: asyncpg.Pool, incident_id: uuid.UUID, limit: int, cursor: tuple[datetime, uuid.UUID] | None
) -> ComplaintPage:
    """Candidates for the incident's children, newest first: open, unlinked, of a hall in its area (or handed
    to a unit there), of its category, received within its window."""
    row = await pool.fetchrow("SELECT * FROM incidents WHERE incident_id = $1", incident_id)
    assert row is not None
    return await list_complaints(
        pool,
        visible_prefix=OrgUnit.parse(row["area"]).path,
        limit=limit,
        cursor=cursor,
        category=row["category"],
        received_from=row["window_start"],
        received_to=row["window_end"],
        unlinked=True,
        open_only=True,
    )
