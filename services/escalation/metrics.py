"""What the working-time clocks tell Prometheus: stopped clocks met or breached (the verdicts escalation
records and publishes), their working durations (buckets at the SLA limits, so attainment at a limit
reads straight off a bucket), and the limits themselves, drawn as targets.

Labels are catalogue values and the province: never complaint ids, numbers or customers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.escalation.policy import InvalidPolicy
from services.escalation.tracking import ClockStop, SlaRules, SlaSubject
from shared.clock import Clock
from shared.organisation import OrgUnit

logger = logging.getLogger(__name__)

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


def count_stops(subject: SlaSubject, verdicts: list[ClockStop]) -> None:
    """Counts the subject's new verdicts, once they are stored, so a retried save counts nothing twice.

    A clock that a reopen within the window restarted was counted at its first stop: its later
    verdicts count no second response or resolution.
    """
    for verdict in verdicts:
        if subject.restates_earlier_verdict(verdict):
            continue
        counter, durations = CLOCK_METRICS[verdict.clock]
        counter.labels(*_labels(subject), "breached" if verdict.breached else "met").inc()
        durations.labels(subject.priority).observe(verdict.working_seconds)


def _labels(subject: SlaSubject) -> tuple[str, str, str, str]:
    province = subject.hall.path[0] if subject.hall.path else ""
    return subject.channel, subject.category, subject.priority, province


class SlaLimits(Collector):
    """`sla_limit_working_seconds`, drawn as the target line: the limits in force at each scrape, in
    the group's calendar, for each priority the policy names (and "normal"). Worked out at the
    scrape, so a policy that takes effect later shows without a restart."""

    def __init__(self, rules: SlaRules, clock: Clock) -> None:
        self.rules = rules
        self.clock = clock

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        limits = self._family()
        try:
            policy = self.rules.policy_for(self.clock())
        except InvalidPolicy:  # none in force yet: the other metrics must still be scraped
            logger.warning("no SLA policy in force: no limits to draw")
            yield limits
            return
        working_day = self.rules.calendars.for_unit(OrgUnit()).working_day
        priorities = {"normal"} | {rule.match["priority"] for rule in policy.rules if "priority" in rule.match}
        for priority in sorted(priorities):
            for clock_name in ("first_response", "resolution"):
                limit = policy.limit(clock_name, category="", priority=priority, channel="")
                limits.add_metric([clock_name, priority], limit.working_time(working_day).total_seconds())
        yield limits

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "sla_limit_working_seconds", "The policy's limit in working seconds.", labels=["clock", "priority"]
        )
