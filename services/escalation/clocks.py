"""SLA clocks as a pure function of a complaint's history: when each warning, breach and escalation falls due.

A clock counts working time from its start, not counting pauses (waiting on the
customer), until it is stopped. Every limit is converted to working time (a working
day is one day of business hours), so a pause extends each milestone by exactly the
paused working time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from services.escalation.calendar import WorkingCalendar
from services.escalation.policy import Limit, Policy
from shared.organisation import LADDER_LEVELS, OrgUnit, escalation_target

MilestoneKind = Literal["warning", "breach", "escalation"]


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


@dataclass
class Clock:
    started_at: datetime
    limit: Limit
    stopped_at: datetime | None = None
    pauses: list[Pause] = field(default_factory=list)
    reopened: bool = False  # runs again since its subject was reopened (a complaint, or an order's rejected report)
    # The working time one pause may stop the clock for without a supervisor's approval; past it the
    # clock runs again, so a hall cannot stop its own clocks without limit. None: no cap.
    pause_cap: timedelta | None = None

    def pause(self, at: datetime) -> None:
        if not self.paused:
            self.pauses.append(Pause(at))

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
        if pause.approved or self.pause_cap is None:
            return pause.end
        capped = calendar.add_working_time(pause.start, self.pause_cap)
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


def milestones(clock: Clock, policy: Policy, calendar: WorkingCalendar, hall: OrgUnit) -> list[Milestone]:
    """Warnings, then the breach (escalating to level 1), then one level more at every further step."""
    day = calendar.working_day
    plan: list[tuple[MilestoneKind, float, int]] = [("warning", t, 0) for t in policy.warning_thresholds]
    plan.append(("breach", policy.breach_at, 1))
    plan += [
        ("escalation", policy.breach_at + policy.escalation_step * step, step + 1) for step in range(1, LADDER_LEVELS)
    ]
    return [
        Milestone(kind, fraction, level, escalation_target(hall, level), clock.due_at(calendar, fraction, day))
        for kind, fraction, level in plan
    ]


REOPEN_WINDOW = timedelta(days=30)
# What each step does to the clocks: the one place that says which steps stop which clock. A step
# not named here moves no clock (and the escalation consumer does not subscribe to it).
ComplaintStepEffect = Literal["respond", "pause", "approve_pause", "resume", "close", "reopen"]
COMPLAINT_STEP_EFFECTS: dict[str, ComplaintStepEffect] = {
    "ComplaintAcknowledged": "respond",  # stops the first-response clock
    "ComplaintResolvedOnSpot": "respond",
    "ComplaintPaused": "pause",  # every running clock, for at most the policy's cap
    "ComplaintPauseApproved": "approve_pause",  # a supervisor lets the pause run past the cap
    "ComplaintResumed": "resume",
    "ComplaintClosed": "close",  # stops every running clock: a closure is a response too
    "ComplaintReopened": "reopen",  # restarts the resolution clock, or starts a new one after the window
}
OrderStepEffect = Literal["report", "reject", "appeal", "decide_appeal"]
ORDER_STEP_EFFECTS: dict[str, OrderStepEffect] = {
    "RectificationOrderRectified": "report",  # stops the rectification clock
    "RectificationOrderVerified": "report",
    "RectificationOrderRejected": "reject",  # the same clock runs on
    "RectificationOrderAppealed": "appeal",  # starts the unit above's clock to decide the appeal
    "RectificationOrderAppealDecided": "decide_appeal",  # and stops it
}


@dataclass(frozen=True)
class Limits:
    first_response: Limit
    resolution: Limit
    pause_cap: timedelta | None = None


def clocks_from_history(
    history: list[tuple[str, datetime]], limits: Limits, reopen_window: timedelta = REOPEN_WINDOW
) -> dict[str, Clock]:
    """The response and resolution clocks a complaint's events imply, replayed from the start.

    `history` is (integration event type, instant) in order, starting with the registration
    at the instant the complaint was received. Replaying lets a new policy or calendar be
    applied to open complaints: recompute from the same history under the new version.
    """
    (first_type, received_at), *steps = history
    if first_type != "ComplaintRegistered":
        raise ValueError(f"a complaint's history starts with its registration, not {first_type}")
    response = Clock(started_at=received_at, limit=limits.first_response, pause_cap=limits.pause_cap)
    resolution = Clock(started_at=received_at, limit=limits.resolution, pause_cap=limits.pause_cap)
    closed_at: datetime | None = None
    for event_type, at in steps:
        running = [clock for clock in (response, resolution) if clock.stopped_at is None]
        effect = COMPLAINT_STEP_EFFECTS.get(event_type)
        if effect == "respond":
            response.stop(at)
        elif effect == "pause":
            for clock in running:
                clock.pause(at)
        elif effect == "approve_pause":
            for clock in running:
                clock.approve_pause()
        elif effect == "resume":
            for clock in running:
                clock.resume(at)
        elif effect == "close":
            for clock in running:
                clock.stop(at)
            closed_at = at
        elif effect == "reopen" and closed_at is not None:
            if at - closed_at <= reopen_window:
                resolution.restart()
                resolution.resume(at)
            else:
                resolution = Clock(started_at=at, limit=limits.resolution, reopened=True, pause_cap=limits.pause_cap)
            closed_at = None
    return {"first_response": response, "resolution": resolution}


def order_clock_from_history(
    history: list[tuple[str, datetime]], limit: Limit, appeal_limit: Limit
) -> dict[str, Clock]:
    """A rectification order's clock runs from opening until the hall reports its rectification;
    a rejected report means the work is not done, so the same clock runs on; verification ends it.
    Once the hall appeals against the finding, the unit above's `appeal_decision` clock runs until it decides."""
    (first_type, opened_at), *steps = history
    if first_type != "RectificationOrderOpened":
        raise ValueError(f"an order's history starts with its opening, not {first_type}")
    clock = Clock(started_at=opened_at, limit=limit)
    clocks = {"rectification": clock}
    for event_type, at in steps:
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
