"""What the working-time clocks tell Prometheus: stopped clocks met or breached, their working
durations (buckets at the SLA limits, so attainment at a limit reads straight off a bucket),
and the limits themselves, drawn as targets.

Labels are catalogue values and the province: never complaint ids, numbers or customers.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from services.escalation.tracking import ClockStop, SlaRules, SlaSubject
from shared.auth import OrgUnit

STOP_LABELS = ["channel", "category", "priority", "province", "sla"]
FIRST_RESPONDED = Counter(
    "complaints_first_responded", "Complaints whose first response clock stopped, met or breached.", STOP_LABELS
)
RESOLVED = Counter("complaints_resolved", "Complaints whose resolution clock stopped, met or breached.", STOP_LABELS)
FIRST_RESPONSE_SECONDS = Histogram(
    "complaint_first_response_working_seconds",
    "Working time from receipt to first response.",
    ["priority"],
    buckets=(900, 1800, 3600, 7200, 14400, 21600, 32400, 64800, 162000, 324000),
)
RESOLUTION_SECONDS = Histogram(
    "complaint_resolution_working_seconds",
    "Working time from receipt to closure.",
    ["priority"],
    buckets=(3600, 14400, 32400, 64800, 97200, 129600, 162000, 243000, 324000, 648000),
)
SLA_LIMIT = Gauge("sla_limit_working_seconds", "The policy's limit in working seconds.", ["clock", "priority"])
CLOCK_METRICS = {
    "first_response": (FIRST_RESPONDED, FIRST_RESPONSE_SECONDS),
    "resolution": (RESOLVED, RESOLUTION_SECONDS),
}


def prepare_series(subject: SlaSubject) -> None:
    """Creates the complaint's series at 0 when its clocks start: Prometheus' rate() cannot see the
    first increment of a series that appears at 1, so a first breach would be lost to the SLO."""
    for counter, durations in CLOCK_METRICS.values():
        for outcome in ("met", "breached"):
            counter.labels(*_labels(subject), outcome)
        durations.labels(subject.priority)


def count_stops(subject: SlaSubject, stops: list[ClockStop]) -> None:
    """Called once the stops are stored, so a retried save counts nothing twice."""
    for stop in stops:
        counter, durations = CLOCK_METRICS[stop.clock]
        counter.labels(*_labels(subject), "breached" if stop.breached else "met").inc()
        durations.labels(subject.priority).observe(stop.working_seconds)


def _labels(subject: SlaSubject) -> tuple[str, str, str, str]:
    province = subject.hall.path[0] if subject.hall.path else ""
    return subject.channel, subject.category, subject.priority, province


def publish_limits(rules: SlaRules, now: datetime) -> None:
    """The limits in force now for each priority the policy names (and "normal"), in the group's calendar."""
    policy = rules.policy_for(now)
    working_day = rules.calendars.for_unit(OrgUnit()).working_day
    priorities = {"normal"} | {rule.match["priority"] for rule in policy.rules if "priority" in rule.match}
    for priority in sorted(priorities):
        for clock in ("first_response", "resolution"):
            limit = policy.limit(clock, category="", priority=priority, channel="")
            SLA_LIMIT.labels(clock, priority).set(limit.working_time(working_day).total_seconds())
