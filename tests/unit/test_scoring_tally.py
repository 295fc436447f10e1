"""The running tally scores exactly what scoring every fact from scratch would, in any order."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eventsourcing.application import project_aggregate
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring.application import HallFact, ScoringApplication
from services.scoring.domain import Scorecard, SourceEvent
from services.scoring.policy import COMPONENTS, ScoringPolicy, load_scoring_policies
from services.scoring.scorecard import (
    ComplaintFacts,
    FindingFacts,
    InspectionFacts,
    PeriodFacts,
    Score,
    Subject,
    contribution,
    score,
    score_of_tally,
)
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
    RectificationStoppedFact,
    ResolutionBreachedFact,
    ResolutionStoppedFact,
    ResponseBreachedFact,
)

POLICIES = load_scoring_policies()
NOW = datetime(2026, 11, 16, 2, tzinfo=UTC)
SUBJECTS = [uuid.UUID(int=n) for n in range(1, 4)]


def reference_score(facts: PeriodFacts, policy: ScoringPolicy) -> Score:
    """The score read straight off every fact, one complaint, finding and inspection at a time."""
    complaints = [
        c
        for c in facts.complaints.values()
        if c.registered and (c.root_cause_class is None or c.root_cause_class in policy.hall_bears)
    ]
    decided = [c for c in complaints if c.responded or c.response_breached]
    rated = [
        policy.satisfaction_values[level]
        for c in complaints
        for source, level in c.satisfaction.items()
        if source in policy.satisfaction_sources
    ]
    innovation = [i.innovation_rating for i in facts.inspections.values() if i.innovation_rating is not None]

    def share(part: float, whole: int) -> float | None:
        return part / whole if whole else None

    shares = {
        "response_timeliness": share(sum(not c.response_breached for c in decided), len(decided)),
        "resolution_rate": share(sum(c.closed for c in complaints), len(complaints)),
        "satisfaction": share(sum(rated), len(rated)),
        "handling_efficiency": share(sum(not c.resolution_breached for c in complaints), len(complaints)),
        "innovation": share(sum(innovation), len(innovation)),
    }
    without_data = 1.0 if policy.without_data == "full_marks" else 0.0
    components = {
        name: round(policy.weights[name] * (without_data if shares[name] is None else shares[name]), 2)  # type: ignore[operator]
        for name in COMPONENTS
    }
    findings = sum(
        f.points * policy.finding_deduction_per_point * (policy.overdue_multiplier if f.overdue else 1)
        for f in facts.findings.values()
        if not f.waived
    )
    deductions = findings
    for c in complaints:
        if c.substantiated:
            impact = policy.negative_impact
            deductions += impact.get("substantiated_major_complaint", 0.0) if c.priority == "major" else 0.0
            deductions += impact.get("regulator_appeal_upheld", 0.0) if c.channel == "regulator_appeal" else 0.0
            deductions += impact.get("media_exposure", 0.0) if c.channel == "internet_media" else 0.0
    bonus = min(sum(i.bonus for i in facts.inspections.values()), policy.bonus_cap)
    total = min(max(sum(components.values()) - deductions + bonus, 0.0), policy.final_cap)
    return Score(components, round(deductions, 2), round(findings, 2), round(bonus, 2), round(total, 2))


subjects = st.sampled_from(SUBJECTS)
complaint_facts = st.one_of(
    st.builds(
        ComplaintRegisteredFact,
        subject=subjects,
        priority=st.sampled_from(["normal", "major"]),
        channel=st.sampled_from(["app", "regulator_appeal", "internet_media"]),
    ),
    *(
        st.builds(fact, subject=subjects)
        for fact in (
            AcknowledgedFact,
            ResponseBreachedFact,
            ResolutionBreachedFact,
            ComplaintClosedFact,
            ComplaintReopenedFact,
        )
    ),
    st.builds(
        FeedbackFact,
        subject=subjects,
        satisfaction=st.sampled_from(sorted(POLICIES["2026-01"].satisfaction_values)),
        source=st.sampled_from(["customer", "graded_hall", "other_unit"]),
    ),
    st.builds(
        CheckedFact,
        subject=subjects,
        substantiated=st.booleans(),
        root_cause_class=st.sampled_from([None, "hall_service", "network", "business_rules", "unclassified"]),
    ),
    *(
        st.builds(fact, subject=subjects, breached=st.booleans())
        for fact in (FirstResponseStoppedFact, ResolutionStoppedFact)
    ),
)
inspection_facts = st.one_of(
    st.builds(
        InspectedFact,
        subject=subjects,
        bonus=st.integers(0, 5).map(float),
        innovation_rating=st.sampled_from([None, 0.0, 0.25, 0.5, 0.8, 1.0]),
    ),
    st.builds(FindingOpenedFact, subject=subjects, points=st.integers(0, 10)),
    st.builds(OrderOverdueFact, subject=subjects),
    st.builds(RectificationStoppedFact, subject=subjects, breached=st.booleans()),
    st.builds(DeductionWaivedFact, subject=subjects, decided_by=st.just("group/安徽")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(complaint_facts, inspection_facts), max_size=40), st.sampled_from(sorted(POLICIES)))
def test_the_tally_scores_what_the_facts_say(applied: list[AnyScoringFact], version: str) -> None:
    facts = PeriodFacts()
    for fact in applied:
        expected_tally = facts.tally_with(fact)
        facts.apply(fact)
        assert facts.tally == expected_tally

    recounted: dict[str, int] = {}
    subjects: list[Subject] = [
        *facts.complaints.values(),
        *facts.findings.values(),
        *facts.inspections.values(),
    ]
    for subject in subjects:
        for key, value in contribution(subject).items():
            recounted[key] = recounted.get(key, 0) + value
    assert {k: v for k, v in facts.tally.items() if v} == {k: v for k, v in recounted.items() if v}
    assert score(facts, POLICIES[version]) == reference_score(facts, POLICIES[version])


def sqlite_env(path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}


def test_replicas_that_share_a_store_each_see_what_the_other_applied(tmp_path: Path) -> None:
    policies = {"2026-01": POLICIES["2026-01"]}
    first, second = (ScoringApplication(sqlite_env(tmp_path / "store.db"), policies, lambda: NOW) for _ in "12")

    def apply(scoring: ScoringApplication, fact: AnyScoringFact) -> None:
        assert scoring.apply("H", "2026-11", SourceEvent(uuid.uuid4(), "Event", NOW), fact)

    complaint = SUBJECTS[0]
    apply(first, ComplaintRegisteredFact(subject=complaint, priority="normal", channel="app"))
    apply(second, FirstResponseStoppedFact(subject=complaint, breached=False))  # first's cached card is behind
    apply(first, ComplaintClosedFact(subject=complaint))
    apply(second, FeedbackFact(subject=complaint, satisfaction="unsatisfied"))

    for scoring in (first, second):
        card = scoring.scorecard("H", "2026-11")
        assert card is not None
        steps = [e for e in scoring.repository.event_store.get(card.id) if isinstance(e, Scorecard.FactApplied)]
        assert [e.score_before for e in steps[1:]] == [e.score_after for e in steps[:-1]]  # one unbroken chain
        assert card.score == steps[-1].score_after == 80.0  # unsatisfied: the satisfaction component's 20 lost


def test_a_batch_of_facts_scores_every_hall_as_applying_them_one_at_a_time_does(tmp_path: Path) -> None:
    one_at_a_time, batched = (ScoringApplication({}, POLICIES, lambda: NOW) for _ in "12")
    complaint, other = SUBJECTS[0], SUBJECTS[1]
    facts = [
        HallFact("H1", "2026-11", SourceEvent(uuid.uuid4(), "Event", NOW), fact)
        for fact in (
            ComplaintRegisteredFact(subject=complaint, priority="normal", channel="app"),
            ResponseBreachedFact(subject=complaint),
            FeedbackFact(subject=complaint, satisfaction="satisfied"),
        )
    ]
    facts.insert(
        1,
        HallFact(
            "H2",
            "2026-11",
            SourceEvent(uuid.uuid4(), "Event", NOW),
            ComplaintRegisteredFact(subject=other, priority="urgent", channel="hotline"),
        ),
    )
    facts.append(facts[0])  # delivered again

    singles = [one_at_a_time.apply(f.hall_id, f.period, f.source, f.fact) for f in facts]
    assert batched.apply_all(facts) == singles == [True, True, True, True, False]

    for hall_id in ("H1", "H2"):
        expected, got = (app.scorecard(hall_id, "2026-11") for app in (one_at_a_time, batched))
        assert expected is not None and got is not None
        assert (got.score, got.version) == (expected.score, expected.version)


def test_a_refused_batch_leaves_no_unsaved_change_in_the_cached_scorecards() -> None:
    scoring = ScoringApplication({}, POLICIES, lambda: NOW)
    registered = ComplaintRegisteredFact(subject=SUBJECTS[0], priority="normal", channel="app")
    assert scoring.apply("H", "2026-11", SourceEvent(uuid.uuid4(), "Event", NOW), registered)
    closed = HallFact("H", "2026-11", SourceEvent(uuid.uuid4(), "Event", NOW), ComplaintClosedFact(subject=SUBJECTS[0]))
    unknown_period = HallFact("H", "not-a-period", SourceEvent(uuid.uuid4(), "Event", NOW), registered)

    with pytest.raises(ValueError):
        scoring.apply_all([closed, unknown_period])

    assert scoring.apply_all([closed]) == [True]  # not already applied by the refused batch


def test_a_complaint_whose_cause_a_department_bears_leaves_the_halls_score_as_without_it() -> None:
    policy = POLICIES["2026-12"]
    facts = PeriodFacts()
    facts.apply(ComplaintRegisteredFact(subject=SUBJECTS[0], priority="major", channel="app"))
    assert score(facts, policy).total == 100 - 30  # open: none of 1 resolved
    hall_fault = CheckedFact(subject=SUBJECTS[0], substantiated=True, root_cause_class="hall_service")
    assert score_of_tally(facts.tally_with(hall_fault), policy).total == 100 - 30 - 5  # substantiated major
    facts.apply(CheckedFact(subject=SUBJECTS[0], substantiated=True, root_cause_class="network"))
    assert score(facts, policy).total == 100  # the network department's, as if never received
    facts.apply(CheckedFact(subject=SUBJECTS[0], substantiated=True))  # a review's ruling keeps the class
    assert score(facts, policy).total == 100
    hall_borne = policy.model_copy(update={"attribution": {**policy.attribution, "network": "hall"}})
    assert score(facts, hall_borne).total == 100 - 30 - 5


def test_a_mass_incidents_child_counts_for_its_hall_only_if_the_policy_says_so_and_again_once_unlinked() -> None:
    policy = POLICIES["2026-12"]
    facts = PeriodFacts()
    facts.apply(ComplaintRegisteredFact(subject=SUBJECTS[0], priority="major", channel="app"))
    facts.apply(CheckedFact(subject=SUBJECTS[0], substantiated=True, root_cause_class="hall_service"))
    facts.apply(IncidentLinkFact(subject=SUBJECTS[0], incident_id=str(SUBJECTS[1])))
    assert not policy.incident_children_count and score(facts, policy).total == 100  # as if never received
    counted = policy.model_copy(update={"incident_children_count": True})
    assert score(facts, counted).total == 100 - 30 - 5  # open, and a substantiated major complaint
    facts.apply(IncidentLinkFact(subject=SUBJECTS[0], incident_id=None))
    assert score(facts, policy).total == 100 - 30 - 5


def test_the_policy_may_weigh_repeat_complaints_the_hall_bears() -> None:
    facts = PeriodFacts()
    facts.apply(ComplaintRegisteredFact(subject=SUBJECTS[0], priority="normal", channel="app", repeat_count=2))
    facts.apply(ComplaintRegisteredFact(subject=SUBJECTS[1], priority="normal", channel="app"))
    policy = POLICIES["2026-12"]
    weighed = policy.model_copy(update={"repeat_deduction": 2.5})

    assert policy.repeat_deduction == 0
    assert score(facts, weighed).total == score(facts, policy).total - 2.5  # one repeat of the two
    facts.apply(CheckedFact(subject=SUBJECTS[0], substantiated=True, root_cause_class="network"))
    assert score(facts, weighed).total == score(facts, policy).total  # a department's: not the hall's repeat


def test_an_upheld_appeal_restores_exactly_the_findings_points_twice_if_overdue() -> None:
    policy = POLICIES["2026-12"]
    facts = PeriodFacts()
    for fact in (
        FindingOpenedFact(subject=SUBJECTS[0], points=2),
        FindingOpenedFact(subject=SUBJECTS[1], points=4),
        OrderOverdueFact(subject=SUBJECTS[0]),
    ):
        facts.apply(fact)
    assert score(facts, policy).total == 100 - 2 * 2 - 4
    facts.apply(DeductionWaivedFact(subject=SUBJECTS[0], decided_by="group/安徽/合肥"))
    assert score(facts, policy).total == 100 - 4


class SnapshotsOften(ScoringApplication):
    snapshotting_intervals = {Scorecard: 3}  # noqa: RUF012 - eventsourcing's class variable


def test_a_scorecard_loaded_from_its_snapshot_is_the_one_its_events_replay_to(tmp_path: Path) -> None:
    """Held facts, feedback, a finding and an inspection: a cold replica loads the scorecard from its last
    snapshot and the events after it, and goes on scoring exactly as replaying every event does."""
    policies = {"2026-01": POLICIES["2026-01"]}
    hot = SnapshotsOften(sqlite_env(tmp_path / "store.db"), policies, lambda: NOW)
    complaint, other, order = SUBJECTS
    facts: list[AnyScoringFact] = [
        ResponseBreachedFact(subject=other),  # before its registration: held
        ComplaintRegisteredFact(subject=complaint, priority="normal", channel="app", category="billing"),
        FirstResponseStoppedFact(subject=complaint, breached=False),
        FeedbackFact(subject=complaint, satisfaction="satisfied"),
        FindingOpenedFact(subject=order, points=5, item_id="counter.tidy"),
        InspectedFact(subject=uuid.uuid4(), innovation_rating=4.0, bonus=1.0, inspection_type="routine"),
        ComplaintClosedFact(subject=other),  # held too
    ]
    for fact in facts:
        assert hot.apply("H", "2026-11", SourceEvent(uuid.uuid4(), "Event", NOW), fact)
    card = hot.scorecard("H", "2026-11")
    assert card is not None and card.held, "two facts still wait for their complaint"

    cold = SnapshotsOften(sqlite_env(tmp_path / "store.db"), policies, lambda: NOW)
    assert cold.snapshots is not None
    [latest] = list(cold.snapshots.get(card.id, desc=True, limit=1))
    assert 0 < latest.originator_version <= card.version
    from_snapshot = cold.scorecard("H", "2026-11")
    replayed = cold.repository.event_store.get(card.id)
    from_events = project_aggregate(None, replayed)
    assert from_snapshot is not None and from_events is not None
    for loaded in (from_snapshot, from_events):
        assert (loaded.version, loaded.score, loaded.seen) == (card.version, card.score, card.seen)
        assert (loaded.facts, loaded.held) == (card.facts, card.held)

    registered = ComplaintRegisteredFact(subject=other, priority="urgent", channel="hotline")
    assert cold.apply("H", "2026-11", SourceEvent(uuid.uuid4(), "Event", NOW), registered)  # releases the held
    went_on = cold.scorecard("H", "2026-11")
    all_replayed = project_aggregate(None, cold.repository.event_store.get(card.id))
    assert went_on is not None and all_replayed is not None and not went_on.held
    assert (went_on.version, went_on.score, went_on.facts) == (
        all_replayed.version,
        all_replayed.score,
        all_replayed.facts,
    )


def test_what_a_scorecard_snapshot_holds_changes_only_with_its_class_version() -> None:
    """Snapshots keep each subject's fields by name: removing or renaming one, or changing what a scorecard
    holds, needs a new `Scorecard.class_version` and its upcast of the stored snapshots' state. Then update this."""
    held = {kind.__name__: [f.name for f in fields(kind)] for kind in (ComplaintFacts, FindingFacts, InspectionFacts)}
    state = Scorecard.Snapshot.take(Scorecard.open("H", "2026-11")).state
    assert (Scorecard.class_version, sorted(state), sorted(state["facts"])) == (
        1,
        ["class_version", "facts", "hall_id", "held", "period", "score", "seen"],
        ["complaints", "findings", "inspections", "tally"],
    )
    assert held == {
        "ComplaintFacts": [
            "registered",
            "priority",
            "channel",
            "category",
            "repeat",
            "responded",
            "response_breached",
            "resolution_breached",
            "closed",
            "satisfaction",
            "substantiated",
            "root_cause_class",
            "responsible_unit",
            "incident_id",
        ],
        "FindingFacts": ["points", "overdue", "waived", "item_id", "rejections"],
        "InspectionFacts": ["innovation_rating", "bonus", "inspection_type", "highlights"],
    }
