"""The complaint timeline read model: every event of a complaint, in order."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from shared.consumer import Connection
from shared.contracts import IntegrationEvent

TIMELINE_DDL = """
CREATE TABLE IF NOT EXISTS complaint_timeline (
    complaint_id uuid NOT NULL,
    aggregate_version integer NOT NULL,
    event_id uuid NOT NULL UNIQUE,
    event_type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    details jsonb NOT NULL,
    PRIMARY KEY (complaint_id, aggregate_version)
)
"""


class TimelineEntry(BaseModel):
    version: int
    event_id: uuid.UUID
    type: str
    occurred_at: datetime
    details: dict[str, object]


class Timeline(BaseModel):
    complaint_id: uuid.UUID
    events: list[TimelineEntry]


async def create_tables(pool: asyncpg.Pool) -> None:
    await pool.execute(TIMELINE_DDL)


async def record_complaint_event(connection: Connection, event: IntegrationEvent) -> None:
    envelope = event.envelope
    await connection.execute(
        """
        INSERT INTO complaint_timeline
            (complaint_id, aggregate_version, event_id, event_type, occurred_at, details)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb)
        """,
        envelope.aggregate_id,
        envelope.aggregate_version,
        envelope.event_id,
        envelope.event_type,
        envelope.occurred_at,
        json.dumps(envelope.data),
    )


async def load_timeline(pool: asyncpg.Pool, complaint_id: uuid.UUID) -> Timeline | None:
    rows = await pool.fetch(
        """
        SELECT aggregate_version, event_id, event_type, occurred_at, details
        FROM complaint_timeline WHERE complaint_id = $1 ORDER BY aggregate_version
        """,
        complaint_id,
    )
    if not rows:
        return None
    return Timeline(
        complaint_id=complaint_id,
        events=[
            TimelineEntry(
                version=row["aggregate_version"],
                event_id=row["event_id"],
                type=row["event_type"],
                occurred_at=row["occurred_at"],
                details=json.loads(row["details"]),
            )
            for row in rows
        ],
    )
