"""A hall's score for one period, as a pure function of the facts the period's events established.

Components (weights from the policy):
- response timeliness: of the complaints whose first response is decided (escalation judged their
  first-response clock stopped, or its breach fired), the share answered without a breach;
- resolution rate: the share of the period's complaints that are closed (a reopen undoes it);
- satisfaction: the mean value (satisfied 1, basically 0.8, ...) of the verdicts from the sources the
  policy accepts (`satisfaction_sources`), counting each complaint's latest verdict of each source;
- handling efficiency: the share of the period's complaints whose resolution clock never breached;
- innovation / highlights: the mean of the innovation ratings (0-1) the period's inspections gave.
A component without data scores full marks or zero, as the policy says. Deductions: each
inspection finding costs its checklist points (times the policy's per-point rate), multiplied
when its rectification order went overdue, and nothing once the hall's appeal against it is
upheld; a substantiated major complaint, an upheld regulator appeal and a substantiated
complaint that reached the media (channel `internet_media`) cost the policy's negative-impact
points. Bonus: the points inspections awarded for highlights (亮点), capped by the policy's
bonus cap. Total: components - deductions + bonus, between 0 and the final cap.
A checked complaint counts only if the policy's `attribution` has the hall bear its root cause's
class; otherwise the unit above or a department bears it, and it moves the hall's score not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from services.scoring.policy import COMPONENTS, Component, ScoringPolicy, TieBreakKey
from shared.contracts import (
    AcknowledgedFact,
    AnyScoringFact,
    CheckedFact,
    ComplaintClosedFact,
    ComplaintRegisteredFact,
    ComplaintReopenedFact,
    DeductionWaivedFact,
    FeedbackFact,
    FindingOpenedFact,
    FirstResponseStoppedFact,
    IncidentLinkFact,
    InspectedFact,
    OrderOverdueFact,
    OrderRejectedFact,
    ReclassifiedFact,
    RectificationStoppedFact,
    ResolutionBreachedFact,
    ResolutionStoppedFact,
    ResponseBreachedFact,
    RootCauseClass,
    SatisfactionSource,
)


@dataclass
class ComplaintFacts:
    """Created by whichever of its facts comes first: breaches arrive on another topic than the registration
    (a scorecard holds them back until it arrives, see `PeriodFacts.awaits_subject`; a replay need not)."""

    registered: bool = False
    priority: str = ""
    channel: str = ""
    category: str | None = None
    repeat: bool = False  # a repeat complaint (重复投诉): the customer complained within the window before
    responded: bool = False
    response_breached: bool = False
    resolution_breached: bool = False
    closed: bool = False
    satisfaction: dict[SatisfactionSource, str] = field(default_factory=dict)  # the latest verdict of each source
    substantiated: bool = False
    root_cause_class: RootCauseClass | None = None  # what its check found; None: not checked, or before classes
    responsible_unit: str | None = None
    incident_id: str | None = None  # the mass incident it is a child of


@dataclass
class FindingFacts:
    points: int = 0
    overdue: bool = False
    waived: bool = False  # an upheld appeal (申诉): the finding costs nothing
    item_id: str | None = None
    rejections: int = 0  # reports the inspector sent back: for the monthly report, not scored


@dataclass(frozen=True)
class InspectionFacts:
    innovation_rating: float | None
    bonus: float
    inspection_type: str | None = None
    highlights: int = 0


Tally = dict[str, int]
"""Counts and sums over a period's facts that no policy enters (see `contribution`); `score` weighs them.
Whole numbers, so that taking a contribution back leaves exactly what was there before it."""
MICROS = 1_000_000  # the unit of ratings and bonus points in a tally
CAUSE_PREFIX = "cause:"  # a checked complaint's keys: `cause:<root-cause class>|<key>`
INCIDENT_PREFIX = "incident|"  # before those of a mass incident's child: `incident|<key>`
Subject = ComplaintFacts | FindingFacts | InspectionFacts
SubjectT = TypeVar("SubjectT", ComplaintFacts, FindingFacts, InspectionFacts)


FindingFact = FindingOpenedFact | OrderOverdueFact | RectificationStoppedFact | DeductionWaivedFact | OrderRejectedFact


@dataclass
class PeriodFacts:
    """The facts of a period, with their running tally: applying a fact costs the same however many
    the period already holds, and so does scoring them."""

    complaints: dict[uuid.UUID, ComplaintFacts] = field(default_factory=dict)
    findings: dict[uuid.UUID, FindingFacts] = field(default_factory=dict)  # by rectification order
    inspections: dict[uuid.UUID, InspectionFacts] = field(default_factory=dict)
    tally: Tally = field(default_factory=dict)

    @classmethod
    def of(cls, facts: Iterable[AnyScoringFact]) -> PeriodFacts:
        """The period as these facts, applied in order, leave it."""
        period = cls()
        for fact in facts:
            period.apply(fact)
        return period

    def apply(self, fact: AnyScoringFact) -> None:
        before, after = self._change(fact)
        self.tally = _shifted(self.tally, before, after)
        if isinstance(after, InspectionFacts):
            self.inspections[fact.subject] = after
        elif isinstance(after, FindingFacts):
            self.findings[fact.subject] = after
        else:
            self.complaints[fact.subject] = after

    def tally_with(self, fact: AnyScoringFact) -> Tally:
        """The tally once `fact` is applied, leaving these facts as they are."""
        return _shifted(self.tally, *self._change(fact))

    def _change(self, fact: AnyScoringFact) -> tuple[Subject | None, Subject]:
        """The fact's subject as it is, and as the fact leaves it."""
        if isinstance(fact, InspectedFact):
            after = InspectionFacts(fact.innovation_rating, fact.bonus, fact.inspection_type, fact.highlights)
            return self.inspections.get(fact.subject), after
        if isinstance(fact, FindingFact):
            finding = self.findings.get(fact.subject)
            return finding, _finding_after(finding, fact)
        complaint = self.complaints.get(fact.subject)
        return complaint, _complaint_after(complaint, fact)

    def as_state(self) -> dict[str, Any]:
        """The facts as plain JSON, for a snapshot; `from_state` reads them back as they were. Each subject's
        fields as they are (all plain values): a snapshot is encoded as soon as it is taken."""
        return {
            "complaints": {subject.hex: vars(facts) for subject, facts in self.complaints.items()},
            "findings": {subject.hex: vars(facts) for subject, facts in self.findings.items()},
            "inspections": {subject.hex: vars(facts) for subject, facts in self.inspections.items()},
            "tally": self.tally,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PeriodFacts:
        def by_subject(kind: type[SubjectT], held: dict[str, dict[str, Any]]) -> dict[uuid.UUID, SubjectT]:
            """A field added to `kind` since the snapshot takes its default."""
            return {uuid.UUID(subject): kind(**facts) for subject, facts in held.items()}

        return cls(
            by_subject(ComplaintFacts, state["complaints"]),
            by_subject(FindingFacts, state["findings"]),
            by_subject(InspectionFacts, state["inspections"]),
            state["tally"],
        )

    def awaits_subject(self, fact: AnyScoringFact) -> bool:
        """True if the fact is about a complaint not registered yet or an order not opened yet.

        Such a fact moves nothing now (the score counts registered complaints and opened findings),
        but will once its subject is known: it came first on the other topic.
        """
        if isinstance(fact, ComplaintRegisteredFact | FindingOpenedFact | InspectedFact):
            return False
        if isinstance(fact, FindingFact):
            return fact.subject not in self.findings
        complaint = self.complaints.get(fact.subject)
        return complaint is None or not complaint.registered


def _shifted(tally: Tally, before: Subject | None, after: Subject) -> Tally:
    """`tally` with the subject's contribution as it was taken back and as it is added."""
    shifted = dict(tally)
    for key, value in contribution(after).items():
        shifted[key] = shifted.get(key, 0) + value
    for key, value in (contribution(before) if before else {}).items():
        shifted[key] = shifted.get(key, 0) - value
    return shifted


def _finding_after(finding: FindingFacts | None, fact: FindingFact) -> FindingFacts:
    after = replace(finding) if finding else FindingFacts()
    if isinstance(fact, FindingOpenedFact):
        after.points, after.item_id = fact.points, fact.item_id
    elif isinstance(fact, DeductionWaivedFact):
        after.waived = True
    elif isinstance(fact, OrderRejectedFact):
        after.rejections += 1
    elif isinstance(fact, OrderOverdueFact) or fact.breached:
        after.overdue = True
    return after


def _complaint_after(complaint: ComplaintFacts | None, fact: AnyScoringFact) -> ComplaintFacts:
    after = replace(complaint) if complaint else ComplaintFacts()
    if isinstance(fact, ComplaintRegisteredFact):
        after.registered, after.priority, after.channel = True, fact.priority, fact.channel
        after.category, after.repeat = fact.category, fact.repeat_count > 0
    elif isinstance(fact, IncidentLinkFact):
        after.incident_id = fact.incident_id
    elif isinstance(fact, ReclassifiedFact):
        after.priority, after.channel, after.category = fact.priority, fact.channel, fact.category
    elif isinstance(fact, FirstResponseStoppedFact):
        after.responded = True
        after.response_breached = after.response_breached or fact.breached
    elif isinstance(fact, AcknowledgedFact):
        after.responded = True
    elif isinstance(fact, ResolutionStoppedFact):
        after.resolution_breached = after.resolution_breached or fact.breached
    elif isinstance(fact, ResponseBreachedFact):
        after.response_breached = True
    elif isinstance(fact, ResolutionBreachedFact):
        after.resolution_breached = True
    elif isinstance(fact, ComplaintClosedFact):
        after.closed = True
    elif isinstance(fact, ComplaintReopenedFact):
        after.closed = False
    elif isinstance(fact, FeedbackFact):
        after.satisfaction = {**after.satisfaction, fact.source: fact.satisfaction}
    elif isinstance(fact, CheckedFact):
        after.substantiated = fact.substantiated
        after.root_cause_class = fact.root_cause_class or after.root_cause_class
        after.responsible_unit = fact.responsible_unit or after.responsible_unit
    return after


def contribution(subject: Subject) -> Tally:
    """What one complaint, finding or inspection adds to its period's tally."""
    if isinstance(subject, InspectionFacts):
        rating = subject.innovation_rating
        return {
            "innovation_rated": rating is not None,
            "innovation_micros": round((rating or 0.0) * MICROS),
            "bonus_micros": round(subject.bonus * MICROS),
        }
    if isinstance(subject, FindingFacts):
        if subject.waived:
            return {}
        return {"overdue_finding_points" if subject.overdue else "finding_points": subject.points}
    if not subject.registered:
        return {}
    decided = subject.responded or subject.response_breached
    tally: Tally = {
        "complaints": 1,
        "decided": decided,
        "decided_on_time": decided and not subject.response_breached,
        "closed": subject.closed,
        "resolution_kept": not subject.resolution_breached,
    }
    if subject.repeat:
        tally["repeats"] = 1
    for source, level in subject.satisfaction.items():
        tally[f"rated:{source}"] = 1
        tally[f"satisfaction:{level}:{source}"] = 1
    if subject.substantiated:
        tally["substantiated_major"] = subject.priority == "major"
        tally[f"substantiated_via:{subject.channel}"] = 1
    # Kept apart by class and by incident, so that the policy decides whether the hall bears it (`borne_by_hall`).
    if subject.root_cause_class is not None:
        tally = {f"{CAUSE_PREFIX}{subject.root_cause_class}|{key}": value for key, value in tally.items()}
    if subject.incident_id is not None:
        tally = {f"{INCIDENT_PREFIX}{key}": value for key, value in tally.items()}
    return tally


def borne_by_hall(tally: Tally, policy: ScoringPolicy) -> Tally:
    """The tally of what the hall bears: complaints of root-cause classes the policy attributes elsewhere
    (the unit above, a department) left out, as if never received."""
    borne: Tally = {}
    hall_classes = policy.hall_bears
    for key, value in tally.items():
        if key.startswith(INCIDENT_PREFIX):
            if not policy.incident_children_count:
                continue
            key = key.removeprefix(INCIDENT_PREFIX)
        if key.startswith(CAUSE_PREFIX):
            cause, _, key = key.removeprefix(CAUSE_PREFIX).partition("|")
            if cause not in hall_classes:
                continue
        borne[key] = borne.get(key, 0) + value
    return borne


@dataclass(frozen=True)
class Score:
    components: dict[Component, float]
    deductions: float  # of which `finding_deductions` come from inspection findings
    finding_deductions: float
    bonus: float
    total: float


def score(facts: PeriodFacts, policy: ScoringPolicy) -> Score:
    return score_of_tally(facts.tally, policy)


def score_of_tally(all_facts: Tally, policy: ScoringPolicy) -> Score:
    tally = borne_by_hall(all_facts, policy)

    def counted(key: str) -> int:
        return tally.get(key, 0)

    sources = policy.satisfaction_sources
    rated = sum(counted(f"rated:{source}") for source in sources)
    satisfaction = sum(
        value * counted(f"satisfaction:{level}:{source}")
        for level, value in policy.satisfaction_values.items()
        for source in sources
    )
    shares: dict[Component, float | None] = {
        "response_timeliness": _share(counted("decided_on_time"), counted("decided")),
        "resolution_rate": _share(counted("closed"), counted("complaints")),
        "satisfaction": _share(satisfaction, rated),
        "handling_efficiency": _share(counted("resolution_kept"), counted("complaints")),
        "innovation": _share(counted("innovation_micros") / MICROS, counted("innovation_rated")),
    }
    without_data = 1.0 if policy.without_data == "full_marks" else 0.0
    components: dict[Component, float] = {}
    for name in COMPONENTS:
        share = shares[name]
        components[name] = round(policy.weights[name] * (without_data if share is None else share), 2)
    per_point = policy.finding_deduction_per_point
    findings = per_point * (counted("finding_points") + policy.overdue_multiplier * counted("overdue_finding_points"))
    deductions = findings
    impact = policy.negative_impact
    deductions += impact.get("substantiated_major_complaint", 0.0) * counted("substantiated_major")
    deductions += impact.get("regulator_appeal_upheld", 0.0) * counted("substantiated_via:regulator_appeal")
    deductions += impact.get("media_exposure", 0.0) * counted("substantiated_via:internet_media")
    deductions += policy.repeat_deduction * counted("repeats")
    bonus = min(counted("bonus_micros") / MICROS, policy.bonus_cap)
    total = min(max(sum(components.values()) - deductions + bonus, 0.0), policy.final_cap)
    return Score(components, round(deductions, 2), round(findings, 2), round(bonus, 2), round(total, 2))


def tie_break_values(facts: PeriodFacts, policy: ScoringPolicy) -> tuple[float, ...]:
    """The hall's value for each of the policy's tie-break keys, in order; higher is better for each."""
    scored = score(facts, policy)
    tally = borne_by_hall(facts.tally, policy)
    substantiated = sum(n for key, n in tally.items() if key.startswith("substantiated_via:"))
    values: dict[TieBreakKey, float] = {
        # What the inspections gave and took: the innovation rating, highlights and findings.
        "inspection_score": round(scored.components["innovation"] + scored.bonus - scored.finding_deductions, 2),
        "satisfaction": scored.components["satisfaction"],
        "response_timeliness": scored.components["response_timeliness"],
        "fewer_substantiated_complaints": -substantiated,
    }
    return tuple(values[key] for key in policy.tie_break)


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None
