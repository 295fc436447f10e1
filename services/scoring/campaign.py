"""The evaluation campaign (评比) of one period and scope: the seeds' 自评上报 → 逐级认定 → 差额产生.

Each hall may claim a grade (self-assessment); each city then certifies which of its halls meet the
standard and nominates those it holds good or better; each province certifies "good" among its cities'
nominees, fewer than nominated (差额), and nominates halls for "excellent"; the group certifies
"excellent" among those, at most the policy's share (80%, a 20% margin); closing freezes every hall's
standing with its certified grade. Each step is an event with its actor, unit, time and reason.

A hall's certified grade follows from the steps: excellent if the group certified it, good if its
province did, meets if its city did, below if its city left it out. Halls without the evidence a
grade needs (not assessed) cannot be certified and take no grade.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from services.scoring.policy import CampaignRules, Grade

CAMPAIGN_NAMESPACE = uuid.UUID("0b7f1c52-33a4-4a8e-9d1e-6a2f4c8b9e07")


def campaign_id(period: str, scope: str) -> uuid.UUID:
    return uuid.uuid5(CAMPAIGN_NAMESPACE, f"{scope}/{period}")


class OutOfOrder(Exception):
    """A step the campaign's stage does not allow yet, or no longer."""


class NotEligible(Exception):
    """A step naming halls or units it may not: `field` names the list, `index` the entry."""

    def __init__(self, message: str, field: str, index: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.index = index


class LimitExceeded(Exception):
    """More halls certified than the policy's margin allows; the message names the limit."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Actor:
    subject: str
    unit: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class RosterHall:
    """A graded hall of the scope when the campaign opened."""

    hall_id: str
    province: str
    city: str

    @property
    def city_unit(self) -> str:
        return f"group/{self.province}/{self.city}"

    @property
    def province_unit(self) -> str:
        return f"group/{self.province}"


class Campaign(Aggregate):
    @event("Opened")
    def __init__(
        self,
        id: uuid.UUID,  # noqa: A002 - eventsourcing's name
        period: str,
        scope: str,
        policy_version: str,
        roster: dict[str, dict[str, str]],  # hall → {province, city}
        actor: dict[str, Any],
    ) -> None:
        self.period = period
        self.scope = scope
        self.policy_version = policy_version
        self.roster = {hall: RosterHall(hall, unit["province"], unit["city"]) for hall, unit in roster.items()}
        self.steps: list[dict[str, Any]] = [{"step": "opened", "unit": scope, **actor}]
        self.self_assessments: dict[str, Grade] = {}
        self.city_meets: dict[str, list[str]] = {}  # by city unit
        self.city_nominated: dict[str, list[str]] = {}
        self.province_good: dict[str, list[str]] = {}  # by province unit
        self.province_nominated: dict[str, list[str]] = {}
        self.not_assessed: set[str] = set()  # halls without the evidence a grade needs when their city certified
        self.group_excellent: list[str] | None = None
        self.snapshot: list[dict[str, Any]] | None = None
        self.closed_at: datetime | None = None

    @classmethod
    def open(cls, period: str, scope: str, policy_version: str, roster: list[RosterHall], actor: Actor) -> Campaign:
        return cls(
            id=campaign_id(period, scope),
            period=period,
            scope=scope,
            policy_version=policy_version,
            roster={hall.hall_id: {"province": hall.province, "city": hall.city} for hall in roster},
            actor=_recorded(actor),
        )

    @property
    def cities(self) -> set[str]:
        return {hall.city_unit for hall in self.roster.values()}

    @property
    def provinces(self) -> set[str]:
        return {hall.province_unit for hall in self.roster.values()}

    @property
    def stage(self) -> str:
        """Where the campaign stands: what it waits for next."""
        if self.closed_at is not None:
            return "closed"
        if self.group_excellent is not None:
            return "awaiting_close"
        if set(self.province_good) == self.provinces:
            return "awaiting_group"
        if set(self.city_meets) == self.cities:
            return "awaiting_provinces"
        return "awaiting_cities" if self.city_meets else "self_assessment"

    # Self-assessment (自评上报)

    def assess_self(self, hall_id: str, claimed: Grade, actor: Actor) -> None:
        self._still_open()
        hall = self.roster.get(hall_id)
        if hall is None:
            raise NotEligible(f"hall {hall_id} is not graded in campaign {self.scope} {self.period}", "hall_id")
        if hall.city_unit in self.city_meets:
            raise OutOfOrder(f"city {hall.city_unit} has certified its halls: self-assessment is over")
        self._self_assessed(hall_id=hall_id, claimed_grade=claimed, actor=_recorded(actor))

    @event("SelfAssessed")
    def _self_assessed(self, hall_id: str, claimed_grade: Grade, actor: dict[str, Any]) -> None:
        self.self_assessments[hall_id] = claimed_grade
        self.steps.append({"step": "self_assessed", "hall_id": hall_id, "claimed_grade": claimed_grade, **actor})

    # The city certifies "meets" and nominates good-or-better (市公司自评认定, 良好以上上报)

    def certify_city(self, city: str, meets: list[str], nominated: list[str], assessed: set[str], actor: Actor) -> None:
        """`meets`: the halls meeting the standard but not nominated; `nominated`: those put forward as good or
        better (they meet the standard too). `assessed`: the halls with the evidence a grade needs."""
        self._still_open()
        if city not in self.cities:
            raise NotEligible(f"no graded hall of campaign {self.scope} {self.period} in {city}", "city")
        if city in self.city_meets:
            raise OutOfOrder(f"city {city} has certified its halls already")
        city_halls = {hall for hall, unit in self.roster.items() if unit.city_unit == city}
        _distinct_members({"meets": meets, "nominated": nominated}, city_halls, f"a graded hall of {city}")
        for field, halls in (("meets", meets), ("nominated", nominated)):
            for index, hall in enumerate(halls):
                if hall not in assessed:
                    raise NotEligible(f"hall {hall} is not assessed: it cannot be certified", field, index)
        unassessed = sorted(city_halls - assessed)
        self._city_certified(
            city=city, meets=meets, nominated=nominated, not_assessed=unassessed, actor=_recorded(actor)
        )

    @event("CityCertified")
    def _city_certified(
        self, city: str, meets: list[str], nominated: list[str], not_assessed: list[str], actor: dict[str, Any]
    ) -> None:
        self.city_meets[city] = meets
        self.city_nominated[city] = nominated
        self.not_assessed.update(not_assessed)
        step = {"step": "city_certified", "unit": city, "meets": meets, "nominated": nominated}
        self.steps.append({**step, "not_assessed": not_assessed, **actor})

    # The province certifies "good", fewer than nominated, and nominates "excellent" (省公司差额认定)

    def review_province(
        self, province: str, good: list[str], nominated: list[str], rules: CampaignRules, actor: Actor
    ) -> None:
        """`good`: the nominees certified good and not put forward; `nominated`: those put forward for
        excellent (certified good at least). Together, fewer than the cities nominated by the margin."""
        self._still_open()
        if province not in self.provinces:
            raise NotEligible(f"no graded hall of campaign {self.scope} {self.period} in {province}", "province")
        if province in self.province_good:
            raise OutOfOrder(f"province {province} has reviewed its nominees already")
        cities = {city for city in self.cities if city.startswith(f"{province}/")}
        if waiting := sorted(cities - set(self.city_meets)):
            raise OutOfOrder(f"{', '.join(waiting)} must certify first")
        nominees = {hall for city in cities for hall in self.city_nominated[city]}
        _distinct_members({"good": good, "nominated": nominated}, nominees, "nominated by its city")
        most = max(len(nominees) - rules.province_margin, 0)
        if len(good) + len(nominated) > most:
            raise LimitExceeded(
                f"the province certifies fewer than its cities nominated (差额, margin {rules.province_margin}):"
                f" at most {most} of {len(nominees)}, not {len(good) + len(nominated)}",
                "good",
            )
        self._province_reviewed(province=province, good=good, nominated=nominated, actor=_recorded(actor))

    @event("ProvinceReviewed")
    def _province_reviewed(self, province: str, good: list[str], nominated: list[str], actor: dict[str, Any]) -> None:
        self.province_good[province] = good
        self.province_nominated[province] = nominated
        step = {"step": "province_reviewed", "unit": province, "good": good, "nominated": nominated}
        self.steps.append({**step, **actor})

    # The group certifies "excellent", with the 20% margin (集团差额 20% 认定)

    def certify_group(self, excellent: list[str], rules: CampaignRules, actor: Actor) -> None:
        self._still_open()
        if self.group_excellent is not None:
            raise OutOfOrder("the group has certified already")
        if waiting := sorted(self.provinces - set(self.province_good)):
            raise OutOfOrder(f"{', '.join(waiting)} must review first")
        nominees = {hall for halls in self.province_nominated.values() for hall in halls}
        _distinct_members({"excellent": excellent}, nominees, "nominated by its province")
        most = math.floor(rules.group_certified_share * len(nominees) + 1e-9)
        if len(excellent) > most:
            raise LimitExceeded(
                f"the group certifies at most {rules.group_certified_share:.0%} of its nominees (差额):"
                f" at most {most} of {len(nominees)}, not {len(excellent)}",
                "excellent",
            )
        self._group_certified(excellent=excellent, actor=_recorded(actor))

    @event("GroupCertified")
    def _group_certified(self, excellent: list[str], actor: dict[str, Any]) -> None:
        self.group_excellent = excellent
        self.steps.append({"step": "group_certified", "unit": "group", "excellent": excellent, **actor})

    # Close: the standings frozen with their certified grades

    def close(self, snapshot: list[dict[str, Any]], actor: Actor) -> None:
        self._still_open()
        if self.group_excellent is None:
            raise OutOfOrder("the group must certify before the campaign closes")
        self._closed(snapshot=snapshot, closed_at=actor.at, actor=_recorded(actor))

    @event("Closed")
    def _closed(self, snapshot: list[dict[str, Any]], closed_at: datetime, actor: dict[str, Any]) -> None:
        self.snapshot = snapshot
        self.closed_at = closed_at
        self.steps.append({"step": "closed", "unit": self.scope, **actor})

    def certified_grade(self, hall_id: str) -> Grade | None:
        """What the steps so far certified the hall (None: not yet, or never: not assessed or not graded)."""
        hall = self.roster.get(hall_id)
        if hall is None or hall.city_unit not in self.city_meets or hall_id in self.not_assessed:
            return None
        if self.group_excellent is not None and hall_id in self.group_excellent:
            return "excellent"
        province = self.province_good.get(hall.province_unit)
        if province is not None and hall_id in province + self.province_nominated[hall.province_unit]:
            return "good"
        if hall_id in self.city_meets[hall.city_unit] + self.city_nominated[hall.city_unit]:
            return "meets"
        return "below"

    def _still_open(self) -> None:
        if self.closed_at is not None:
            raise OutOfOrder(f"campaign {self.scope} {self.period} is closed")


def _recorded(actor: Actor) -> dict[str, Any]:
    return {"actor": actor.subject, "actor_unit": actor.unit, "reason": actor.reason, "at": actor.at.isoformat()}


def _distinct_members(lists: dict[str, list[str]], allowed: set[str], what: str) -> None:
    """Every hall the lists (by field) name is named once among them all, and is in `allowed`."""
    seen: set[str] = set()
    for field, halls in lists.items():
        for index, hall in enumerate(halls):
            if hall in seen:
                raise NotEligible(f"hall {hall} is named twice", field, index)
            if hall not in allowed:
                raise NotEligible(f"hall {hall} is not {what}", field, index)
            seen.add(hall)
