"""SLA clocks as a pure function of a complaint's history: when each warning, breach and escalation falls due.

A clock counts working time from its start, not counting pauses (waiting on the
customer), until it is stopped. Every limit is converted to working time (a working
day is one day of business hours), so a pause extends each milestone by exactly the
paused working time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal, NamedTuple

from services.escalation.calendar import WorkingCalendar
from services.escalation.policy import Limit, Policy
from shared.organisation import LADDER_LEVELS, OrgUnit, escalation_target

MilestoneKind = Literal["raised", "warning", "breach", "escalation"]


@dataclass(frozen=True)
class Milestone:
    kind: MilestoneKind
    fraction: float
    level: int
    target_unit: OrgUnit | None
    due_at: datetime | None  # None while the clock is paused or stopped before it


@dataclass
class Pause:
    start: datetime
    end: datetime | None = None  # None while it lasts
    approved: bool = False  # a supervisor let it stop the clock past the cap
    # The working time it may stop the clock for without a supervisor's approval; past it the clock runs
    # again, so a hall cannot stop its own clocks without limit. None: no cap.
    cap: timedelta | None = None


@dataclass
class Clock:
    started_at: datetime
    limit: Limit
    stopped_at: datetime | None = None
    pauses: list[Pause] = field(default_factory=list)
    reopened: bool = False  # runs again since its subject was reopened (a complaint, or an order's rejected report)

    def pause(self, at: datetime, cap: timedelta | None = None) -> None:
        if not self.paused:
            self.pauses.append(Pause(at, cap=cap))

    def resume(self, at: datetime) -> None:
        if self.paused:
            self.pauses[-1].end = at

    def approve_pause(self) -> None:
        """The pause under way may stop the clock until it ends, however long."""
        if self.paused:
            self.pauses[-1].approved = True

    def stop(self, at: datetime) -> None:
        self.resume(at)
        self.stopped_at = at

    def restart(self) -> None:
        """A reopen within the window: the original clock runs on from where it was stopped."""
        if self.stopped_at is not None:
            self.pauses.append(Pause(self.stopped_at, approved=True))  # the closed stretch: not a wait, no cap
            self.stopped_at = None
            self.reopened = True

    @property
    def paused(self) -> bool:
        """A pause is under way (it may have run past its cap, and stopped stopping the clock)."""
        return bool(self.pauses) and self.pauses[-1].end is None

    def pause_end(self, calendar: WorkingCalendar, pause: Pause) -> datetime | None:
        """When `pause` stops stopping the clock: its end, or its cap's end if sooner and not approved."""
        if pause.approved or pause.cap is None:
            return pause.end
        capped = calendar.add_working_time(pause.start, pause.cap)
        return capped if pause.end is None else min(pause.end, capped)

    def elapsed(self, calendar: WorkingCalendar, now: datetime) -> timedelta:
        """Working time counted so far."""
        end = min(now, self.stopped_at) if self.stopped_at else now
        total = calendar.working_time_between(self.started_at, end)
        for pause in self.pauses:
            pause_end = self.pause_end(calendar, pause)
            if pause.start < end:
                total -= calendar.working_time_between(pause.start, min(pause_end or end, end))
        return total

    def due_at(self, calendar: WorkingCalendar, fraction: float, policy_day: timedelta) -> datetime | None:
        """When `fraction` of the limit is used up, if the clock keeps running from now on (or from its
        pause's cap on)."""
        if self.stopped_at is not None:
            return None
        resumed_at = self.pause_end(calendar, self.pauses[-1]) if self.pauses else self.started_at
        if resumed_at is None:  # paused, without a cap: waits for the resume
            return None
        target = self.limit.working_time(policy_day) * fraction
        counted = self.elapsed(calendar, resumed_at)
        if counted >= target:
            return resumed_at
        return calendar.add_working_time(resumed_at, target - counted)


def milestones(
    clock: Clock,
    policy: Policy,
    calendar: WorkingCalendar,
    hall: OrgUnit,
    level_on_arrival: int = 0,
    raises: bool = False,
) -> list[Milestone]:
    """Warnings, then the breach, then one level more at every further step, up to the group.

    The breach escalates one level above where the complaint started: to level 1 (the hall's manager), or
    above the level a major complaint or a regulator appeal was raised to on arrival (`level_on_arrival`).
    The clock that `raises` has that escalation as a milestone of its own, at its start."""
    day = calendar.working_day
    raised = level_on_arrival and raises
    plan: list[tuple[MilestoneKind, float, int]] = [("raised", 0.0, level_on_arrival)] if raised else []
    plan += [("warning", t, 0) for t in policy.warning_thresholds]
    breach_level = min(level_on_arrival + 1, LADDER_LEVELS)
    plan.append(("breach", policy.breach_at, breach_level))
    plan += [
        ("escalation", policy.breach_at + policy.escalation_step * step, breach_level + step)
        for step in range(1, LADDER_LEVELS - breach_level + 1)
    ]
    return [
        Milestone(kind, fraction, level, escalation_target(hall, level), clock.due_at(calendar, fraction, day))
        for kind, fraction, level in plan
    ]


def keep_informed_milestones(clock: Clock, calendar: WorkingCalendar) -> list[Milestone]:
    """A single warning once the interval has passed since the last contact; it neither breaches nor
    escalates, and each contact starts a new clock."""
    return [Milestone("warning", 1.0, 0, None, clock.due_at(calendar, 1.0, calendar.working_day))]


# What each step does to the clocks: the one place that says which steps stop which clock. A step
# not named here, nor a contact, moves no clock (and the escalation consumer does not subscribe to it).
ComplaintStepEffect = Literal["respond", "pause", "approve_pause", "resume", "close", "reopen", "reclassify"]
COMPLAINT_STEP_EFFECTS: dict[str, ComplaintStepEffect] = {
    "ComplaintAcknowledged": "respond",  # stops the first-response clock
    "ComplaintResolvedOnSpot": "respond",
    "ComplaintPaused": "pause",  # the clocks its reason stops, for at most the reason's cap
    "ComplaintPauseApproved": "approve_pause",  # a supervisor lets the pause run past the cap
    "ComplaintResumed": "resume",
    "ComplaintClosed": "close",  # stops every running clock: a closure is a response too
    "ComplaintReopened": "reopen",  # restarts the resolution clock, or starts a new one after the window
    "ComplaintReclassified": "reclassify",  # new limits, derived from the receipt (see `classification`)
}
# Steps in which staff reach the customer: each starts the keep-informed clock afresh.
CUSTOMER_CONTACTS = frozenset(
    {"ComplaintAcknowledged", "ComplaintResolvedOnSpot", "CustomerContacted", "CallbackMade", "FeedbackReceived"}
)
CLASSIFIED_BY = ("category", "priority", "channel")
OrderStepEffect = Literal["report", "reject", "appeal", "decide_appeal"]
ORDER_STEP_EFFECTS: dict[str, OrderStepEffect] = {
    "RectificationOrderRectified": "report",  # stops the rectification clock
    "RectificationOrderVerified": "report",
    "RectificationOrderRejected": "reject",  # the same clock runs on
    "RectificationOrderAppealed": "appeal",  # starts the unit above's clock to decide the appeal
    "RectificationOrderAppealDecided": "decide_appeal",  # and stops it
}
NO_DETAIL: Mapping[str, str] = MappingProxyType({})


class Step(NamedTuple):
    """One event of a subject's history, with what of it moves the clocks: a pause's `reason_code`, a
    reclassification's `category`, `priority` and `channel`."""

    event_type: str
    at: datetime
    detail: Mapping[str, str] = NO_DETAIL


@dataclass(frozen=True)
class PauseTerms:
    clocks: frozenset[str]  # the clocks a pause for this reason stops
    cap: timedelta | None = None


@dataclass(frozen=True)
class Limits:
    first_response: Limit
    resolution: Limit
    pause_cap: timedelta | None = None  # of a pause whose reason `pause_terms` does not name
    pause_terms: Mapping[str, PauseTerms] = field(default_factory=dict)
    keep_informed: Limit | None = None  # none: no keep-informed clock
    reopen_window: timedelta = timedelta(days=30)

    def pause(self, reason_code: str | None) -> PauseTerms:
        """A reason the terms do not name (and every pause, under policies before reasons) stops every clock."""
        default = PauseTerms(frozenset({"first_response", "resolution", "keep_informed"}), self.pause_cap)
        return self.pause_terms.get(reason_code or "", default)


def classification(arrived_as: Mapping[str, str], history: Sequence[Step]) -> dict[str, str]:
    """The complaint's category, priority and channel after its reclassifications: its limits are derived
    from these as if it had been received so, keeping its elapsed time and pauses."""
    current = dict(arrived_as)
    for step in history:
        if COMPLAINT_STEP_EFFECTS.get(step.event_type) == "reclassify":
            current.update({key: step.detail[key] for key in CLASSIFIED_BY if key in step.detail})
    return current


def clocks_from_history(history: Sequence[Step], limits: Limits) -> dict[str, Clock]:
    """The complaint's clocks its events imply, replayed from the start: response, resolution, and
    keep-informed if the limits have one.

    `history` is in order, starting with the registration at the instant the complaint was received.
    Replaying lets a new policy or calendar be applied to open complaints: recompute from the same
    history under the new version.
    """
    (first_type, received_at, _), *steps = history
    if first_type != "ComplaintRegistered":
        raise ValueError(f"a complaint's history starts with its registration, not {first_type}")
    clocks = {
        "first_response": Clock(received_at, limits.first_response),
        "resolution": Clock(received_at, limits.resolution),
    }
    if limits.keep_informed is not None:
        clocks["keep_informed"] = Clock(received_at, limits.keep_informed)
    closed_at: datetime | None = None
    for event_type, at, detail in steps:
        running = {name: clock for name, clock in clocks.items() if clock.stopped_at is None}
        effect = COMPLAINT_STEP_EFFECTS.get(event_type)
        if event_type in CUSTOMER_CONTACTS and "keep_informed" in running:
            clocks["keep_informed"] = _informed_anew(running["keep_informed"], at)
        if effect == "respond":
            clocks["first_response"].stop(at)
        elif effect == "pause":
            terms = limits.pause(detail.get("reason_code"))
            for name in terms.clocks & running.keys():
                running[name].pause(at, terms.cap)
        elif effect == "approve_pause":
            for clock in running.values():
                clock.approve_pause()
        elif effect == "resume":
            for clock in running.values():
                clock.resume(at)
        elif effect == "close":
            for clock in running.values():
                clock.stop(at)
            closed_at = at
        elif effect == "reopen" and closed_at is not None:
            if at - closed_at <= limits.reopen_window:
                clocks["resolution"].restart()
                clocks["resolution"].resume(at)
            else:
                clocks["resolution"] = Clock(started_at=at, limit=limits.resolution, reopened=True)
            if limits.keep_informed is not None:
                clocks["keep_informed"] = Clock(started_at=at, limit=limits.keep_informed)
            closed_at = None
    return clocks


def _informed_anew(clock: Clock, at: datetime) -> Clock:
    """The keep-informed clock from a contact at `at` on; still paused if a pause stopped it."""
    anew = Clock(started_at=at, limit=clock.limit)
    if clock.paused:
        anew.pauses.append(Pause(at, cap=clock.pauses[-1].cap, approved=clock.pauses[-1].approved))
    return anew


def order_clock_from_history(history: Sequence[Step], limit: Limit, appeal_limit: Limit) -> dict[str, Clock]:
    """A rectification order's clock runs from opening until the hall reports its rectification;
    a rejected report means the work is not done, so the same clock runs on; verification ends it.
    Once the hall appeals against the finding, the unit above's `appeal_decision` clock runs until it decides."""
    (first_type, opened_at, _), *steps = history
    if first_type != "RectificationOrderOpened":
        raise ValueError(f"an order's history starts with its opening, not {first_type}")
    clock = Clock(started_at=opened_at, limit=limit)
    clocks = {"rectification": clock}
    for event_type, at, _ in steps:
        effect = ORDER_STEP_EFFECTS.get(event_type)
        if effect == "report" and clock.stopped_at is None:
            clock.stop(at)
        elif effect == "reject":
            clock.restart()
            clock.resume(at)
        elif effect == "appeal" and "appeal_decision" not in clocks:
            clocks["appeal_decision"] = Clock(started_at=at, limit=appeal_limit)
        elif effect == "decide_appeal" and "appeal_decision" in clocks:
            clocks["appeal_decision"].stop(at)
    return clocks
