"""A hall's score for one period, as a pure function of the facts the period's events established.

Components (weights from the policy):
- response timeliness: of the complaints whose first response is decided (acknowledged, or its
  response clock breached), the share answered without a breach;
- resolution rate: the share of the period's complaints that are closed (a reopen undoes it);
- satisfaction: the mean value of each complaint's latest feedback (satisfied 1, basically 0.8, ...);
- handling efficiency: the share of the period's complaints whose resolution clock never breached;
- innovation / highlights: the mean of the innovation ratings (0-1) the period's inspections gave.
A component without data scores full marks or zero, as the policy says. Deductions: each
inspection finding costs its checklist points (times the policy's per-point rate), multiplied
when its rectification order went overdue; a substantiated major complaint, an upheld regulator
appeal and a substantiated complaint that reached the media (channel `internet_media`) cost the
policy's negative-impact points. Bonus: the points inspections awarded for highlights (亮点),
capped by the policy's bonus cap. Total: components - deductions + bonus, between 0 and the final cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.scoring_policy import COMPONENTS, Component, ScoringPolicy


@dataclass
class ComplaintFacts:
    """Created by whichever of its facts comes first: breaches arrive on another topic than the registration
    (a scorecard holds them back until it arrives, see `PeriodFacts.awaits_subject`; a replay need not)."""

    registered: bool = False
    priority: str = ""
    channel: str = ""
    acknowledged: bool = False
    response_breached: bool = False
    resolution_breached: bool = False
    closed: bool = False
    satisfaction: str | None = None
    substantiated: bool = False


@dataclass
class FindingFacts:
    points: int = 0
    overdue: bool = False


@dataclass(frozen=True)
class InspectionFacts:
    innovation_rating: float | None
    bonus: float


@dataclass
class PeriodFacts:
    complaints: dict[str, ComplaintFacts] = field(default_factory=dict)
    findings: dict[str, FindingFacts] = field(default_factory=dict)  # by rectification order
    inspections: dict[str, InspectionFacts] = field(default_factory=dict)

    def apply(self, fact: dict[str, Any]) -> None:
        """`fact` is one of the shapes `services/scoring/consumer.py` builds from integration events."""
        kind, subject = fact["kind"], fact["subject"]
        if kind == "inspected":
            self.inspections[subject] = InspectionFacts(fact.get("innovation_rating"), fact["bonus"])
        elif kind == "finding_opened":
            self.findings.setdefault(subject, FindingFacts()).points = fact["points"]
        elif kind == "order_overdue":
            self.findings.setdefault(subject, FindingFacts()).overdue = True
        else:
            self._apply_to_complaint(self.complaints.setdefault(subject, ComplaintFacts()), kind, fact)

    def awaits_subject(self, fact: dict[str, Any]) -> bool:
        """True if the fact is about a complaint not registered yet or an order not opened yet.

        Such a fact moves nothing now (the score counts registered complaints and opened findings),
        but will once its subject is known: it came first on the other topic.
        """
        kind, subject = fact["kind"], fact["subject"]
        if kind in ("complaint_registered", "finding_opened", "inspected"):
            return False
        if kind == "order_overdue":
            return subject not in self.findings
        complaint = self.complaints.get(subject)
        return complaint is None or not complaint.registered

    @staticmethod
    def _apply_to_complaint(complaint: ComplaintFacts, kind: str, fact: dict[str, Any]) -> None:
        if kind == "complaint_registered":
            complaint.registered, complaint.priority, complaint.channel = True, fact["priority"], fact["channel"]
        elif kind == "acknowledged":
            complaint.acknowledged = True
        elif kind == "response_breached":
            complaint.response_breached = True
        elif kind == "resolution_breached":
            complaint.resolution_breached = True
        elif kind == "closed":
            complaint.closed = True
        elif kind == "reopened":
            complaint.closed = False
        elif kind == "feedback":
            complaint.satisfaction = fact["satisfaction"]
        elif kind == "checked":
            complaint.substantiated = fact["substantiated"]


@dataclass(frozen=True)
class Score:
    components: dict[Component, float]
    deductions: float
    bonus: float
    total: float


def score(facts: PeriodFacts, policy: ScoringPolicy) -> Score:
    complaints = [c for c in facts.complaints.values() if c.registered]
    decided = [c for c in complaints if c.acknowledged or c.response_breached]
    rated = [policy.satisfaction_values[c.satisfaction] for c in complaints if c.satisfaction]
    innovation = [i.innovation_rating for i in facts.inspections.values() if i.innovation_rating is not None]
    shares: dict[Component, float | None] = {
        "response_timeliness": _share(sum(not c.response_breached for c in decided), len(decided)),
        "resolution_rate": _share(sum(c.closed for c in complaints), len(complaints)),
        "satisfaction": sum(rated) / len(rated) if rated else None,
        "handling_efficiency": _share(sum(not c.resolution_breached for c in complaints), len(complaints)),
        "innovation": sum(innovation) / len(innovation) if innovation else None,
    }
    without_data = 1.0 if policy.without_data == "full_marks" else 0.0
    components: dict[Component, float] = {}
    for name in COMPONENTS:
        share = shares[name]
        components[name] = round(policy.weights[name] * (without_data if share is None else share), 2)
    deductions = sum(
        finding.points * policy.finding_deduction_per_point * (policy.overdue_multiplier if finding.overdue else 1)
        for finding in facts.findings.values()
    )
    deductions += sum(_negative_impact(c, policy) for c in complaints)
    bonus = min(sum(i.bonus for i in facts.inspections.values()), policy.bonus_cap)
    total = min(max(sum(components.values()) - deductions + bonus, 0.0), policy.final_cap)
    return Score(components, round(deductions, 2), round(bonus, 2), round(total, 2))


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _negative_impact(complaint: ComplaintFacts, policy: ScoringPolicy) -> float:
    if not complaint.substantiated:
        return 0.0
    impact = 0.0
    if complaint.priority == "major":
        impact += policy.negative_impact.get("substantiated_major_complaint", 0.0)
    if complaint.channel == "regulator_appeal":
        impact += policy.negative_impact.get("regulator_appeal_upheld", 0.0)
    if complaint.channel == "internet_media":
        impact += policy.negative_impact.get("media_exposure", 0.0)
    return impact
