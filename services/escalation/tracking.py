"""The SLA clocks of one complaint or rectification order, as an event-sourced aggregate.

The aggregate keeps only facts: the events that drive its clocks (with their instants),
the milestones that fired, the verdict on each clock when it stopped, and each
recalculation. Deadlines are always derived from those facts under the rules in force
(policy version and calendar), so a new policy or calendar recomputes them from the same
history; a verdict, once recorded, stays what it was.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from eventsourcing.application import project_aggregate
from eventsourcing.domain import Aggregate, DomainEventProtocol, event

from services.escalation.calendar import Calendars, WorkingCalendar
from services.escalation.clocks import (
    COMPLAINT_STEP_EFFECTS,
    CUSTOMER_CONTACTS,
    NO_DETAIL,
    ORDER_STEP_EFFECTS,
    Clock,
    Limits,
    Milestone,
    PauseTerms,
    Step,
    classification,
    clocks_from_history,
    keep_informed_milestones,
    milestones,
    order_clock_from_history,
)
from services.escalation.policy import Limit, Policy, policy_at
from shared.organisation import OrgUnit

SubjectKind = Literal["complaint", "rectification_order"]
SLA_NAMESPACE = uuid.UUID("0b7e2f4c-8d1a-4e6b-b3c5-2a9f7d6e1c08")

# The complaint and order events that move a clock; all others leave the clocks alone.
CLOCK_EVENTS = {
    "complaint": frozenset(COMPLAINT_STEP_EFFECTS) | CUSTOMER_CONTACTS,
    "rectification_order": frozenset(ORDER_STEP_EFFECTS),
}


@dataclass(frozen=True)
class SlaRules:
    """Everything deadlines depend on besides a subject's own history."""

    policies: list[Policy]
    calendars: Calendars

    def policy_for(self, started_at: datetime) -> Policy:
        return policy_at(self.policies, started_at)


@dataclass(frozen=True)
class Opening:
    """The event that starts a subject's clocks, and what chooses its limits."""

    subject_id: uuid.UUID
    kind: SubjectKind
    hall: OrgUnit
    started_by: str  # the opening event's type
    started_at: datetime
    source_event_id: uuid.UUID
    category: str = ""
    priority: str = ""
    channel: str = ""

    @property
    def matching(self) -> dict[str, str]:
        return {"category": self.category, "priority": self.priority, "channel": self.channel}


@dataclass(frozen=True)
class PlannedMilestone:
    key: str  # stable across recalculations, so a milestone fires once however often it is recomputed
    clock: str
    milestone: Milestone


@dataclass(frozen=True)
class ClockPlan:
    name: str
    clock: Clock
    policy: Policy
    calendar: WorkingCalendar
    milestones: list[PlannedMilestone]

    @property
    def judged(self) -> bool:
        """The clock has a limit to breach, so a deadline and a verdict when it stops (keep-informed warns only)."""
        return any(p.milestone.kind == "breach" for p in self.milestones)

    @property
    def deadline(self) -> datetime | None:
        """The breach instant (for a clock that only warns, its warning's); None while paused or stopped."""
        kind = "breach" if self.judged else "warning"
        return next(p.milestone.due_at for p in self.milestones if p.milestone.kind == kind)


@dataclass(frozen=True)
class ClockStop:
    """The verdict on a clock that stopped: the working time it took, against its limit."""

    clock: str
    clock_started_at: datetime
    stopped_at: datetime
    working_seconds: float
    limit_working_seconds: float
    breached: bool  # its breach fired before it stopped
    policy_version: str
    reopened: bool  # the clock ran again after its subject was reopened

    @property
    def key(self) -> str:
        """One verdict per stop: a clock restarted by a reopen and stopped again has a second one."""
        return f"{self.clock}@{self.clock_started_at.isoformat()}/{self.stopped_at.isoformat()}"


def sla_subject_id(subject_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(SLA_NAMESPACE, str(subject_id))


class SlaSubject(Aggregate):
    """One complaint's (or rectification order's) clocks, replayed from the events that drive them."""

    class Opened(Aggregate.Created):
        subject_id: uuid.UUID
        kind: SubjectKind
        hall_unit: str
        category: str
        priority: str
        channel: str
        started_by: str
        started_at: datetime
        source_event_id: uuid.UUID
        rules_version: str
        deadlines: dict[str, str | None]

    @event(Opened)
    def __init__(
        self,
        id: uuid.UUID,  # noqa: A002 - eventsourcing takes the aggregate id from this name
        subject_id: uuid.UUID,
        kind: SubjectKind,
        hall_unit: str,
        category: str,
        priority: str,
        channel: str,
        started_by: str,
        started_at: datetime,
        source_event_id: uuid.UUID,
        rules_version: str,
        deadlines: dict[str, str | None],
    ) -> None:
        self.subject_id = subject_id
        self.kind = kind
        self.hall_unit = hall_unit
        self.arrived_as = {"category": category, "priority": priority, "channel": channel}
        self.history: list[Step] = [Step(started_by, started_at)]
        self.seen = {source_event_id}
        self.fired: dict[str, datetime] = {}
        self.verdicts: list[ClockStop] = []
        self.rules_version = rules_version
        self.deadlines = deadlines
        # Plans depend only on the rules and the history, which only grows; one step plans several times.
        self._planned: tuple[SlaRules, int, list[ClockPlan]] | None = None

    @classmethod
    def open(cls, rules: SlaRules, opening: Opening) -> SlaSubject:
        history = [Step(opening.started_by, opening.started_at)]
        plans = plan_clocks(opening.kind, history, opening.hall, rules, opening.matching)
        subject = cls(
            id=sla_subject_id(opening.subject_id),
            subject_id=opening.subject_id,
            kind=opening.kind,
            hall_unit=str(opening.hall),
            category=opening.category,
            priority=opening.priority,
            channel=opening.channel,
            started_by=opening.started_by,
            started_at=opening.started_at,
            source_event_id=opening.source_event_id,
            rules_version=rules_version(plans, rules),
            deadlines=breach_deadlines(plans),
        )
        subject._planned = (rules, len(history), plans)
        return subject

    @property
    def hall(self) -> OrgUnit:
        return OrgUnit.parse(self.hall_unit)

    @property
    def hall_id(self) -> str:
        return self.hall.path[-1]

    @property
    def matching(self) -> dict[str, str]:
        """Its category, priority and channel now, after any reclassification."""
        return classification(self.arrived_as, self.history)

    @property
    def category(self) -> str:
        return self.matching["category"]

    @property
    def priority(self) -> str:
        return self.matching["priority"]

    @property
    def channel(self) -> str:
        return self.matching["channel"]

    def plans(self, rules: SlaRules, history: list[Step] | None = None) -> list[ClockPlan]:
        """The clocks' plans after the subject's own history, or after `history` (e.g. one step more)."""
        if history is None and self._planned is not None:
            planned_rules, planned_steps, plans = self._planned
            if planned_rules is rules and planned_steps == len(self.history):
                return plans
        plans = plan_clocks(self.kind, history or self.history, self.hall, rules, self.arrived_as)
        if history is None:
            self._planned = (rules, len(self.history), plans)
        return plans

    def next_due(self, plans: list[ClockPlan]) -> datetime | None:
        """The earliest milestone still to fire, if any clock is running."""
        pending = [
            planned.milestone.due_at
            for plan in plans
            for planned in plan.milestones
            if planned.milestone.due_at is not None and planned.key not in self.fired
        ]
        return min(pending, default=None)

    def running_clocks(self, rules: SlaRules) -> set[str]:
        return {plan.name for plan in self.plans(rules) if plan.clock.stopped_at is None}

    def stops_since(self, rules: SlaRules, were_running: set[str]) -> list[ClockStop]:
        """The verdict on each clock among `were_running` that has stopped since: breached if its breach
        fired first, else met."""
        verdicts = []
        for plan in self.plans(rules):
            clock, stopped_at = plan.clock, plan.clock.stopped_at
            if plan.name not in were_running or stopped_at is None or not plan.judged:
                continue
            verdicts.append(
                ClockStop(
                    clock=plan.name,
                    clock_started_at=clock.started_at,
                    stopped_at=stopped_at,
                    working_seconds=clock.elapsed(plan.calendar, stopped_at).total_seconds(),
                    limit_working_seconds=clock.limit.working_time(plan.calendar.working_day).total_seconds(),
                    breached=any(p.milestone.kind == "breach" and p.key in self.fired for p in plan.milestones),
                    policy_version=plan.policy.version,
                    reopened=clock.reopened,
                )
            )
        return verdicts

    def restates_earlier_verdict(self, verdict: ClockStop) -> bool:
        """The same clock, restarted by a reopen within the window, had a verdict before this one."""
        earlier = self.verdicts[: self.verdicts.index(verdict)]
        return any((v.clock, v.clock_started_at) == (verdict.clock, verdict.clock_started_at) for v in earlier)

    def observe(self, rules: SlaRules, event_id: uuid.UUID, step: Step, now: datetime) -> bool:
        """Records a clock-moving event, and the verdict on each clock it stopped; returns False if the
        event was already recorded.

        What fell due before the event happened fires first: a breach at 10:00 is a fact
        even when the acknowledgement of 10:01 is processed before the breach was fired.
        """
        if event_id in self.seen:
            return False
        self.fire_due(rules, up_to=min(step.at, now), now=now)
        running = self.running_clocks(rules)
        after = breach_deadlines(self.plans(rules, [*self.history, step]))
        self._observed(
            subject_id=self.subject_id,
            event_id=event_id,
            event_type=step.event_type,
            at=step.at,
            detail=dict(step.detail),
            deadlines=after,
        )
        for verdict in self.stops_since(rules, running):
            self._judge(verdict, now)
        return True

    def record_missing_verdicts(self, implied: list[ClockStop], now: datetime) -> int:
        """Records each verdict of `implied` (see `replayed_with_verdicts`) this subject does not hold yet."""
        recorded = {verdict.key for verdict in self.verdicts}
        missing = [verdict for verdict in implied if verdict.key not in recorded]
        for verdict in missing:
            self._judge(verdict, now)
        return len(missing)

    def _judge(self, verdict: ClockStop, now: datetime) -> None:
        self.trigger_event(
            self.ClockStopped,
            timestamp=now,
            subject_id=self.subject_id,
            subject_kind=self.kind,
            subject_started_at=self.history[0].at,
            hall_id=self.hall_id,
            clock=verdict.clock,
            clock_started_at=verdict.clock_started_at,
            stopped_at=verdict.stopped_at,
            working_seconds=verdict.working_seconds,
            limit_working_seconds=verdict.limit_working_seconds,
            breached=verdict.breached,
            policy_version=verdict.policy_version,
            reopened=verdict.reopened,
        )

    class ClockStopped(Aggregate.Event):
        """Escalation's verdict on a stopped clock, published as `SlaClockStopped`."""

        subject_id: uuid.UUID
        subject_kind: str
        subject_started_at: datetime
        hall_id: str
        clock: str
        clock_started_at: datetime
        stopped_at: datetime
        working_seconds: float
        limit_working_seconds: float
        breached: bool
        policy_version: str
        reopened: bool

        @property
        def verdict(self) -> ClockStop:
            return ClockStop(
                clock=self.clock,
                clock_started_at=self.clock_started_at,
                stopped_at=self.stopped_at,
                working_seconds=self.working_seconds,
                limit_working_seconds=self.limit_working_seconds,
                breached=self.breached,
                policy_version=self.policy_version,
                reopened=self.reopened,
            )

        def apply(self, aggregate: Any) -> None:
            aggregate.verdicts.append(self.verdict)

    class Observed(Aggregate.Event):
        class_version = 3
        subject_id: uuid.UUID | None  # None in events from before it was kept: their deadlines are not published
        event_id: uuid.UUID
        event_type: str
        at: datetime
        detail: dict[str, str]  # see `Step`
        deadlines: dict[str, str | None]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["subject_id"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["detail"] = {}  # before pauses had reasons and complaints could be reclassified

    @event(Observed)
    def _observed(
        self,
        subject_id: uuid.UUID | None,
        event_id: uuid.UUID,
        event_type: str,
        at: datetime,
        detail: dict[str, str],
        deadlines: dict[str, str | None],
    ) -> None:
        self.history.append(Step(event_type, at, detail or NO_DETAIL))
        self.seen.add(event_id)
        self.deadlines = deadlines

    def fire_due(self, rules: SlaRules, up_to: datetime, now: datetime) -> int:
        """Fires, in order, each milestone due at or before `up_to` that has not fired yet."""
        plans = self.plans(rules)
        due = sorted(
            (
                (planned, plan.policy)
                for plan in plans
                for planned in plan.milestones
                if planned.milestone.due_at is not None
                and planned.milestone.due_at <= up_to
                and planned.key not in self.fired
            ),
            key=lambda pair: (pair[0].milestone.due_at, pair[0].milestone.fraction),
        )
        for planned, policy in due:
            milestone = planned.milestone
            assert milestone.due_at is not None
            self.trigger_event(
                self.MilestoneReached,
                timestamp=now,
                key=planned.key,
                subject_id=self.subject_id,
                subject_kind=self.kind,
                subject_started_at=self.history[0].at,
                hall_id=self.hall_id,
                clock=planned.clock,
                milestone=milestone.kind,
                fraction=milestone.fraction,
                level=milestone.level,
                target_unit=str(milestone.target_unit) if milestone.target_unit else None,
                due_at=milestone.due_at,
                policy_version=policy.version,
            )
        return len(due)

    class MilestoneReached(Aggregate.Event):
        key: str
        subject_id: uuid.UUID
        subject_kind: str
        subject_started_at: datetime
        hall_id: str
        clock: str
        milestone: str
        fraction: float
        level: int
        target_unit: str | None
        due_at: datetime
        policy_version: str

        def apply(self, aggregate: Any) -> None:
            aggregate.fired[self.key] = self.timestamp

    def recalculate(self, rules: SlaRules, now: datetime) -> bool:
        """Re-derives the deadlines under `rules`; records it if the rules differ from the last ones used."""
        plans = self.plans(rules)
        version = rules_version(plans, rules)
        if version == self.rules_version:
            return False
        self.trigger_event(
            self.Recalculated,
            timestamp=now,
            subject_id=self.subject_id,
            previous_rules_version=self.rules_version,
            rules_version=version,
            previous_deadlines=self.deadlines,
            deadlines=breach_deadlines(plans),
        )
        return True

    class Recalculated(Aggregate.Event):
        subject_id: uuid.UUID
        previous_rules_version: str
        rules_version: str
        previous_deadlines: dict[str, str | None]
        deadlines: dict[str, str | None]

        def apply(self, aggregate: Any) -> None:
            aggregate.rules_version = self.rules_version
            aggregate.deadlines = self.deadlines


def replayed_with_verdicts(
    rules: SlaRules, stored: Iterable[DomainEventProtocol[uuid.UUID]]
) -> tuple[SlaSubject, list[ClockStop]]:
    """The subject its stored events make, and the verdict on every stop they imply, as `observe` reached
    them: for subjects whose clocks stopped before escalation recorded its verdicts."""
    subject: SlaSubject | None = None
    verdicts: list[ClockStop] = []
    for domain_event in stored:
        running = subject.running_clocks(rules) if subject is not None else set()
        subject = project_aggregate(subject, [domain_event])
        if isinstance(domain_event, SlaSubject.Observed) and subject is not None:
            verdicts += subject.stops_since(rules, running)
    if subject is None:
        raise ValueError("a subject's history starts with its opening; none was given")
    return subject, verdicts


def plan_clocks(
    kind: SubjectKind,
    history: list[Step],
    hall: OrgUnit,
    rules: SlaRules,
    arrived_as: dict[str, str],
) -> list[ClockPlan]:
    started_at = history[0].at
    policy = rules.policy_for(started_at)
    calendar = rules.calendars.for_unit(hall)
    if kind != "complaint":
        clocks = order_clock_from_history(history, policy.rectification_order, policy.appeal_decision)
        return [
            ClockPlan(
                name,
                clock,
                policy,
                calendar,
                planned_milestones(name, clock, milestones(clock, policy, calendar, hall)),
            )
            for name, clock in clocks.items()
        ]
    matching = classification(arrived_as, history)
    clocks = clocks_from_history(history, complaint_limits(policy, calendar, matching))
    raised = policy.level_on_arrival(**matching)
    plans = []
    for name, clock in clocks.items():
        if name == "keep_informed":
            plan = keep_informed_milestones(clock, calendar)
        else:  # the resolution clock carries the escalation on arrival: it runs until the complaint closes
            plan = milestones(clock, policy, calendar, hall, raised, raises=name == "resolution")
        plans.append(ClockPlan(name, clock, policy, calendar, planned_milestones(name, clock, plan)))
    return plans


def complaint_limits(policy: Policy, calendar: WorkingCalendar, matching: dict[str, str]) -> Limits:
    """The policy's limits for a complaint so classified, in working time on `calendar`."""
    day = calendar.working_day

    def cap(limit: Limit | None) -> timedelta | None:
        return limit.working_time(day) if limit else None

    return Limits(
        first_response=policy.limit("first_response", **matching),
        resolution=policy.limit("resolution", **matching),
        pause_cap=cap(policy.max_pause),
        pause_terms={
            code: PauseTerms(frozenset(rule.pauses), cap(rule.max_pause or policy.max_pause))
            for code, rule in policy.pause_reasons.items()
        },
        keep_informed=policy.keep_informed,
        reopen_window=timedelta(days=policy.reopen_window_days),
    )


def planned_milestones(clock_name: str, clock: Clock, plan: list[Milestone]) -> list[PlannedMilestone]:
    """Keyed by clock, start and rank within their kind (second warning, first escalation, ...), not by share
    of the limit: a policy moving the breach from 100% to 90% must not fire the breach again.
    A clock started anew after a late reopen has new keys, so its milestones fire again."""
    ranks: Counter[str] = Counter()
    keyed = []
    for milestone in plan:
        ranks[milestone.kind] += 1
        key = f"{clock_name}@{clock.started_at.isoformat()}/{milestone.kind}/{ranks[milestone.kind]}"
        keyed.append(PlannedMilestone(key, clock_name, milestone))
    return keyed


def rules_version(plans: list[ClockPlan], rules: SlaRules) -> str:
    """Names the policy by version and content, so even a file edited in place counts as a change."""
    policy = plans[0].policy
    return f"policy {policy.version} ({policy.content_digest}), calendar {rules.calendars.version}"


def breach_deadlines(plans: list[ClockPlan]) -> dict[str, str | None]:
    return {plan.name: plan.deadline.isoformat() if plan.deadline else None for plan in plans if plan.judged}
