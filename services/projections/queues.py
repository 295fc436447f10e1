"""Work queues: each unit's complaints by what falls due next (`GET /api/v1/queues/complaints`).

A complaint's row comes from its summary (owner, hand-off waiting, callback owed, manual escalation, status) and from
escalation's account of each clock in `queue_clocks`: the breach deadline, and which warnings, breaches,
escalations and stop escalation published. Every fact is kept with the escalation event's version and
only a newer one replaces it, so the rows come out the same in whatever order a batch's statements run
(see `Statements`); a warning or escalation counts while it is newer than its clock's stop.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel

from services.projections.cursors import encode_cursor
from shared.consumer import Connection
from shared.contracts import (
    IntegrationEvent,
    SlaBreachedV1,
    SlaClockStoppedV1,
    SlaEscalatedV1,
    SlaEscalatedV2,
    SlaMilestone,
    SlaRecalculatedV1,
    SlaScheduledV1,
    SlaWarningV1,
)
from shared.organisation import OrgUnit

# The clocks a complaint is queued by: those with a limit to breach.
QUEUED_CLOCKS = frozenset({"first_response", "resolution"})
View = Literal["owned", "escalated_to", "hand_off_pending", "at_risk", "overdue", "callback_needed", "paused"]
VIEWS: tuple[View, ...] = (
    "owned",
    "escalated_to",
    "hand_off_pending",
    "at_risk",
    "overdue",
    "callback_needed",
    "paused",
)

# Each view's condition on a complaint `s` with its clocks' state `q`; `{unit}` is the unit asked for.
# The first three are addressed to the unit itself; the others cover everything in its part of the tree.
_HALL_UNIT = "('group/' || h.province || '/' || h.city || '/' || h.hall_id)"
_OWNER_UNIT = f"coalesce(s.owner_unit, {_HALL_UNIT})"
_IN_TREE = (
    f"({_OWNER_UNIT} = {{unit}} OR starts_with({_OWNER_UNIT}, {{unit}} || '/')"
    f" OR {_HALL_UNIT} = {{unit}} OR starts_with({_HALL_UNIT}, {{unit}} || '/'))"
)
VIEW_CONDITIONS: dict[View, str] = {
    "owned": f"{_OWNER_UNIT} = {{unit}}",
    "escalated_to": "({unit} = ANY(q.escalation_targets) OR s.escalated_target = {unit})",
    "hand_off_pending": "s.hand_off_to = {unit}",
    "at_risk": f"q.warned AND NOT q.breached AND {_IN_TREE}",
    "overdue": f"q.breached AND {_IN_TREE}",
    "callback_needed": f"s.callback_owed AND {_IN_TREE}",
    "paused": f"s.status = 'paused' AND {_IN_TREE}",
}
QUEUE_STATE = """
SELECT {columns} FROM complaint_summaries s
JOIN halls h ON h.hall_id = s.hall_id
CROSS JOIN LATERAL (
    SELECT (array_agg(c.clock ORDER BY c.due_at) FILTER (WHERE c.due_at IS NOT NULL))[1] AS next_clock,
           min(c.due_at) AS next_due,
           coalesce(bool_or(c.warned_version > c.stopped_version), false) AS warned,
           coalesce(bool_or(c.breached_version > c.stopped_version), false) AS breached,
           max(c.escalation_level) FILTER (WHERE c.escalation_version > c.stopped_version) AS escalation_level,
           (array_agg(c.escalation_target ORDER BY c.escalation_level DESC)
               FILTER (WHERE c.escalation_version > c.stopped_version))[1] AS escalation_target,
           coalesce(array_agg(c.escalation_target) FILTER (WHERE c.escalation_version > c.stopped_version),
                    '{{}}') AS escalation_targets
    FROM queue_clocks c WHERE c.subject_id = s.complaint_id
) q
WHERE s.status <> 'closed' AND {conditions}
"""


class NextDue(BaseModel):
    clock: str
    due_at: datetime


class Escalation(BaseModel):
    level: int
    target_unit: str


class QueueItem(BaseModel):
    id: uuid.UUID
    number: str
    hall_id: str
    priority: str
    category: str
    status: str
    owner: str  # the owning unit
    hand_off_to: str | None
    next_due: NextDue | None  # the earliest breach deadline of a running clock
    # The higher of the SLA's escalation not yet ended by its clock's stop and the latest manual one.
    escalation: Escalation | None
    at_risk: bool
    overdue: bool
    callback_owed: bool
    received_at: datetime


class QueuePage(BaseModel):
    unit: str
    view: View
    items: list[QueueItem]
    next_cursor: str | None
    counts: dict[View, int]  # complaints in each view of the unit, this one included


def _version(event: IntegrationEvent) -> int:
    return event.envelope.aggregate_version


async def record_deadlines(connection: Connection, event: IntegrationEvent) -> None:
    """`SlaScheduled` and `SlaRecalculated`: each clock's breach deadline now."""
    payload = event.payload
    assert isinstance(payload, SlaScheduledV1 | SlaRecalculatedV1)
    for clock, due_at in sorted(payload.deadlines.items()):
        await connection.execute(
            """
            INSERT INTO queue_clocks (subject_id, clock, due_at, due_version) VALUES ($1, $2, $3, $4)
            ON CONFLICT (subject_id, clock) DO UPDATE SET due_at = EXCLUDED.due_at, due_version = EXCLUDED.due_version
            WHERE queue_clocks.due_version < EXCLUDED.due_version
            """,
            payload.subject_id,
            clock,
            due_at,
            _version(event),
        )


async def record_milestone(connection: Connection, event: IntegrationEvent) -> None:
    """A warning, a breach (escalation level 1, the hall's manager) or an escalation to a unit above.

    Only the clocks with a limit count: the keep-informed clock's warning asks for a contact, not a rescue."""
    milestone = event.payload
    assert isinstance(milestone, SlaMilestone)
    if milestone.clock not in QUEUED_CLOCKS:
        return
    if isinstance(milestone, SlaWarningV1):
        await connection.execute(
            """
            INSERT INTO queue_clocks (subject_id, clock, warned_version) VALUES ($1, $2, $3)
            ON CONFLICT (subject_id, clock)
            DO UPDATE SET warned_version = greatest(queue_clocks.warned_version, EXCLUDED.warned_version)
            """,
            milestone.subject_id,
            milestone.clock,
            _version(event),
        )
        return
    assert isinstance(milestone, SlaBreachedV1 | SlaEscalatedV1)
    # A complaint raised on arrival (a major one, a regulator appeal) is escalated, not overdue.
    overdue = not (isinstance(milestone, SlaEscalatedV2) and milestone.raised_by == "classification")
    await connection.execute(
        """
        INSERT INTO queue_clocks
            (subject_id, clock, breached_version, escalation_level, escalation_target, escalation_version)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (subject_id, clock) DO UPDATE SET
            breached_version = greatest(queue_clocks.breached_version, EXCLUDED.breached_version),
            escalation_level = CASE WHEN queue_clocks.escalation_version < EXCLUDED.escalation_version
                                    THEN EXCLUDED.escalation_level ELSE queue_clocks.escalation_level END,
            escalation_target = CASE WHEN queue_clocks.escalation_version < EXCLUDED.escalation_version
                                     THEN EXCLUDED.escalation_target ELSE queue_clocks.escalation_target END,
            escalation_version = greatest(queue_clocks.escalation_version, EXCLUDED.escalation_version)
        """,
        milestone.subject_id,
        milestone.clock,
        _version(event) if overdue else 0,  # a breach, and every escalation after it: the clock is past its limit
        milestone.level,
        milestone.target_unit,
        _version(event),
    )


async def record_stop(connection: Connection, event: IntegrationEvent) -> None:
    """The clock stopped: its warnings, breach and escalation no longer put the complaint in a queue."""
    stopped = event.payload
    assert isinstance(stopped, SlaClockStoppedV1)
    await connection.execute(
        """
        INSERT INTO queue_clocks (subject_id, clock, stopped_version) VALUES ($1, $2, $3)
        ON CONFLICT (subject_id, clock)
        DO UPDATE SET stopped_version = greatest(queue_clocks.stopped_version, EXCLUDED.stopped_version)
        """,
        stopped.subject_id,
        stopped.clock,
        _version(event),
    )


async def queue(
    pool: asyncpg.Pool, unit: OrgUnit, view: View, limit: int, cursor: tuple[datetime | None, uuid.UUID] | None
) -> QueuePage:
    """The view's complaints, the next due first (those with no deadline last), keyset-paged; and the
    count of every view of the unit."""
    arguments: list[Any] = [str(unit)]
    conditions = [VIEW_CONDITIONS[view].format(unit="$1")]
    if cursor is not None:
        arguments += [cursor[0], cursor[1]]
        conditions.append(
            "(coalesce(q.next_due, 'infinity'), s.complaint_id) > (coalesce($2::timestamptz, 'infinity'), $3)"
        )
    arguments.append(limit + 1)
    rows = await pool.fetch(
        QUEUE_STATE.format(columns=f"s.*, q.*, {_OWNER_UNIT} AS owner_of", conditions=" AND ".join(conditions))
        # Complaints with no deadline (every clock stopped or paused) come last.
        + f" ORDER BY coalesce(q.next_due, 'infinity'), s.complaint_id LIMIT ${len(arguments)}",
        *arguments,
    )
    counted = ", ".join(f"count(*) FILTER (WHERE {VIEW_CONDITIONS[v].format(unit='$1')}) AS {v}" for v in VIEWS)
    counts = await pool.fetchrow(QUEUE_STATE.format(columns=counted, conditions="TRUE"), str(unit))
    assert counts is not None
    items = [_item(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["next_due"], last["complaint_id"])
    return QueuePage(
        unit=str(unit), view=view, items=items, next_cursor=next_cursor, counts={v: counts[v] for v in VIEWS}
    )


def _item(row: asyncpg.Record) -> QueueItem:
    return QueueItem(
        id=row["complaint_id"],
        number=row["number"],
        hall_id=row["hall_id"],
        priority=row["priority"],
        category=row["category"],
        status=row["status"],
        owner=row["owner_of"],
        hand_off_to=row["hand_off_to"],
        next_due=NextDue(clock=row["next_clock"], due_at=row["next_due"]) if row["next_due"] else None,
        escalation=max(
            (
                Escalation(level=level, target_unit=target)
                for level, target in (
                    (row["escalation_level"], row["escalation_target"]),
                    (row["escalated_level"], row["escalated_target"]),
                )
                if level is not None
            ),
            key=lambda escalation: escalation.level,
            default=None,
        ),
        at_risk=row["warned"] and not row["breached"],
        overdue=row["breached"],
        callback_owed=row["callback_owed"],
        received_at=row["received_at"],
    )
