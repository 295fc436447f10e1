"""SLA policies: versioned data files in `policies/`, one per version, each effective from a date.

A file that does not validate is refused at start-up with a message naming the bad entry.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.catalog import catalog
from shared.organisation import LADDER_LEVELS
from shared.versioned import in_force_at, load_version

POLICY_DIR = Path(__file__).parent / "policies"
MatchKey = Literal["category", "priority", "channel"]
# The catalogue's list each match key's values must come from.
MATCHED_IN = {"category": "categories", "priority": "priorities", "channel": "channels"}
ComplaintClock = Literal["first_response", "resolution", "keep_informed"]


class InvalidPolicy(ValueError):
    pass


class Limit(BaseModel):
    """A time limit in working days or working hours, never both."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    working_days: int | None = Field(default=None, gt=0)
    working_hours: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Limit:
        if (self.working_days is None) == (self.working_hours is None):
            raise ValueError("give exactly one of working_days or working_hours")
        return self

    def working_time(self, working_day: timedelta) -> timedelta:
        """As working time, a working day being one day of business hours."""
        if self.working_days is not None:
            return self.working_days * working_day
        return timedelta(hours=self.working_hours or 0)


class Matching(BaseModel):
    """Applies to complaints whose category, priority and channel are those of `match` (empty: to all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    match: dict[MatchKey, str]

    @model_validator(mode="after")
    def _known_values(self) -> Matching:
        for key, value in self.match.items():
            known = catalog().values(MATCHED_IN[key])
            if value not in known:
                raise ValueError(f"match.{key}: {value!r} is not in the catalogue ({', '.join(known)})")
        return self

    def matches(self, complaint: dict[str, str]) -> bool:
        return all(complaint.get(key) == value for key, value in self.match.items())


class Rule(Matching):
    first_response: Limit | None = None
    resolution: Limit | None = None


class RaisedOnArrival(Matching):
    """A complaint so classified starts escalated to `level` (2 the city, 3 the province, 4 the group): on
    registration, or when a reclassification makes it so."""

    level: int = Field(ge=2, le=LADDER_LEVELS)


class PauseRule(BaseModel):
    """What a pause for one reason does: which clocks it stops, and for how long without a supervisor."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pauses: frozenset[ComplaintClock] = Field(min_length=1)
    max_pause: Limit | None = None  # none: the policy's `max_pause`


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    effective_from: AwareDatetime
    source: str
    warning_thresholds: list[float] = Field(min_length=1)
    breach_at: float = Field(gt=0)
    escalation_step: float = Field(gt=0)
    rules: list[Rule] = Field(min_length=1)
    rectification_order: Limit
    # How long one pause of a complaint may stop its clocks without a supervisor's approval; none: no cap.
    max_pause: Limit | None = None
    # How long the unit above has to decide a hall's appeal against a finding; policies before appeals: 5 days.
    appeal_decision: Limit = Limit(working_days=5)
    # By the catalogue's pause reason; a reason not named here (and every pause, in policies before reasons)
    # stops every clock for at most `max_pause`.
    pause_reasons: dict[str, PauseRule] = {}
    # Escalations a complaint starts with; the most specific match wins, later entries winning ties.
    raised_on_arrival: list[RaisedOnArrival] = []
    # With no contact with the customer for this long, the `keep_informed` clock warns (主动跟进); none: no clock.
    keep_informed: Limit | None = None
    # A complaint reopened within this many days of its closure runs its resolution clock on from where it
    # stopped; later, the clock starts afresh.
    reopen_window_days: int = Field(default=30, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        thresholds = self.warning_thresholds
        if thresholds != sorted(thresholds) or not all(0 < t < self.breach_at for t in thresholds):
            raise ValueError("warning_thresholds must rise and stay between 0 and breach_at")
        defaults = [rule for rule in self.rules if not rule.match]
        if len(defaults) != 1 or defaults[0].first_response is None or defaults[0].resolution is None:
            raise ValueError("exactly one rule must have an empty match and give both limits")
        unknown = sorted(set(self.pause_reasons) - set(catalog().pause_reasons))
        if unknown:
            raise ValueError(f"pause_reasons: {', '.join(unknown)} not in the catalogue's pause reasons")
        return self

    @functools.cached_property
    def content_digest(self) -> str:
        """Of the policy's content, so that even a file edited in place under its version counts as a change;
        worked out once, not at every step a subject takes."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:8]

    def level_on_arrival(self, **complaint: str) -> int:
        """The escalation level the complaint starts at; 0: none."""
        matching = [rule for rule in self.raised_on_arrival if rule.matches(complaint)]
        if not matching:
            return 0
        return max(reversed(matching), key=lambda rule: len(rule.match)).level

    def limit(self, kind: Literal["first_response", "resolution"], **complaint: str) -> Limit:
        """The most specific rule that matches the complaint and sets this limit; later rules win ties."""
        matching = [rule for rule in self.rules if getattr(rule, kind) is not None and rule.matches(complaint)]
        best = max(reversed(matching), key=lambda rule: len(rule.match))
        limit: Limit = getattr(best, kind)
        return limit


def load_policy(path: Path) -> Policy:
    return load_version(path, Policy, InvalidPolicy)


def load_policies(directory: Path = POLICY_DIR) -> list[Policy]:
    """Every version, oldest effective date first."""
    policies = sorted((load_policy(path) for path in directory.glob("*.json")), key=lambda p: p.effective_from)
    if not policies:
        raise InvalidPolicy(f"no SLA policy in {directory}")
    return policies


def policy_at(policies: list[Policy], instant: datetime) -> Policy:
    return in_force_at(policies, instant, InvalidPolicy, "SLA policy")
