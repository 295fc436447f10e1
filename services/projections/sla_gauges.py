"""Open, at-risk and overdue complaints as gauges, counted from the read side every few seconds.

Counters of stopped clocks only see a breach once the complaint is answered or closed; these
show a breach while it is still in progress. At risk: open, a running clock warned, none
overdue. Overdue: open, and the clock breached and not stopped (an unanswered complaint past
its first-response limit; an unclosed one past its resolution limit). Whether the first
response was given is escalation's verdict (`SlaClockStopped`), kept in `sla_clock_stops`:
escalation alone says which steps stop a clock. A complaint reopened after the window has a
new resolution clock, but its old clock's warnings and breach still count here until it is
closed again.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from prometheus_client import Gauge

from shared.clock import Clock
from shared.consumer import Connection
from shared.contracts import IntegrationEvent, SlaClockStoppedV1

logger = logging.getLogger(__name__)

OPEN = Gauge("complaints_open", "Complaints not closed.", ["priority"])
AT_RISK = Gauge("complaints_at_risk", "Open complaints warned but not (yet) breached.", ["priority"])
OVERDUE = Gauge("complaints_overdue", "Open complaints past a running clock's limit.", ["clock", "priority"])
OLDEST_OPEN_AGE = Gauge("complaints_oldest_open_age_seconds", "Age of the oldest complaint not closed.")

SLA_STATE = """
SELECT s.priority,
       count(*) AS open,
       count(*) FILTER (WHERE NOT (sla.response_breached AND NOT sla.responded) AND NOT sla.resolution_breached
                        AND ((sla.response_warned AND NOT sla.responded) OR sla.resolution_warned)) AS at_risk,
       count(*) FILTER (WHERE sla.response_breached AND NOT sla.responded) AS response_overdue,
       count(*) FILTER (WHERE sla.resolution_breached) AS resolution_overdue,
       min(s.received_at) AS oldest
FROM complaint_summaries s
CROSS JOIN LATERAL (
    SELECT coalesce(bool_or(t.event_type = 'SlaWarning' AND t.details->>'clock' = 'first_response'), false)
               AS response_warned,
           coalesce(bool_or(t.event_type = 'SlaWarning' AND t.details->>'clock' = 'resolution'), false)
               AS resolution_warned,
           coalesce(bool_or(t.event_type = 'SlaBreached' AND t.details->>'clock' = 'first_response'), false)
               AS response_breached,
           coalesce(bool_or(t.event_type = 'SlaBreached' AND t.details->>'clock' = 'resolution'), false)
               AS resolution_breached,
           EXISTS (SELECT 1 FROM sla_clock_stops c WHERE c.subject_id = s.complaint_id AND c.clock = 'first_response')
               AS responded
    FROM timelines t WHERE t.timeline_id = s.complaint_id
) sla
WHERE s.status <> 'closed'
GROUP BY s.priority
"""


async def record_clock_stop(connection: Connection, event: IntegrationEvent) -> None:
    verdict = event.payload
    if not isinstance(verdict, SlaClockStoppedV1):
        raise TypeError(f"{event.event_type} is not a verdict on a stopped clock")
    await connection.execute(
        "INSERT INTO sla_clock_stops VALUES ($1, $2, $3, $4, $5)",
        event.envelope.event_id,
        verdict.subject_id,
        verdict.clock,
        verdict.outcome,
        verdict.stopped_at,
    )


async def measure(pool: asyncpg.Pool, clock: Clock, priorities_seen: set[str]) -> None:
    """`priorities_seen`: a priority with nothing open any more must read 0, not its last value."""
    rows = {row["priority"]: row for row in await pool.fetch(SLA_STATE)}
    priorities_seen |= rows.keys()
    for priority in priorities_seen:
        row = rows.get(priority)
        OPEN.labels(priority).set(row["open"] if row else 0)
        AT_RISK.labels(priority).set(row["at_risk"] if row else 0)
        OVERDUE.labels("first_response", priority).set(row["response_overdue"] if row else 0)
        OVERDUE.labels("resolution", priority).set(row["resolution_overdue"] if row else 0)
    oldest = min((row["oldest"] for row in rows.values()), default=None)
    OLDEST_OPEN_AGE.set((clock() - oldest).total_seconds() if oldest else 0)


async def keep_measuring(pool: asyncpg.Pool, clock: Clock, interval_seconds: float = 5) -> None:
    priorities_seen: set[str] = set()
    while True:
        try:
            await measure(pool, clock, priorities_seen)
        except Exception:  # a dead task would freeze the gauges, and the alerts on them
            logger.exception("SLA gauges not refreshed")
        await asyncio.sleep(interval_seconds)
