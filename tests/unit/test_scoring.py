"""Scores from facts, and grades with quotas: pure rules, worked out by hand here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.scoring.application import ScoringApplication
from services.scoring.domain import Scorecard, SourceEvent
from services.scoring.grades import Standing, grade_halls
from services.scoring.policy import (
    DEFAULT_TIE_BREAK,
    ScoringPolicy,
    empty_score,
    load_scoring_policies,
    months_of,
    period_start,
)
from services.scoring.scorecard import PeriodFacts, score, tie_break_values
from shared.clock import CHINA_TIME, period_of
from shared.contracts import (
    AcknowledgedFact,
    AnyScoringFact,
    CheckedFact,
    ComplaintClosedFact,
    ComplaintRegisteredFact,
    FeedbackFact,
    FindingOpenedFact,
    FirstResponseStoppedFact,
    InspectedFact,
    OrderOverdueFact,
    ResolutionBreachedFact,
    ResponseBreachedFact,
)

POLICY = load_scoring_policies()["2026-01"]
WITH_MEDIA_EXPOSURE = load_scoring_policies()["2026-12"]


A, B, M = (uuid.UUID(int=n) for n in range(1, 4))  # complaints
O1, O2 = (uuid.UUID(int=n) for n in range(11, 13))  # rectification orders
I1, I2, I3 = (uuid.UUID(int=n) for n in range(21, 24))  # inspections


def facts(*applied: AnyScoringFact) -> PeriodFacts:
    period = PeriodFacts()
    for fact in applied:
        period.apply(fact)
    return period


def registered(subject: uuid.UUID, priority: str = "normal", channel: str = "app") -> ComplaintRegisteredFact:
    return ComplaintRegisteredFact(subject=subject, priority=priority, channel=channel)


def test_a_hall_without_events_scores_full_marks_by_default() -> None:
    assert score(PeriodFacts(), POLICY).total == 100 == empty_score(POLICY)


def test_each_component_follows_its_share() -> None:
    result = score(
        facts(
            registered(A),
            registered(B),
            FirstResponseStoppedFact(subject=A, breached=False),
            ResponseBreachedFact(subject=B),
            FirstResponseStoppedFact(subject=B, breached=True),
            ComplaintClosedFact(subject=A),
            FeedbackFact(subject=A, satisfaction="basically_satisfied"),
            ResolutionBreachedFact(subject=B),
        ),
        POLICY,
    )
    # response 1 of 2 on time: 10; resolved 1 of 2: 15; satisfaction 0.8: 16; efficiency 1 of 2: 7.5; innovation 15
    assert result.components == {
        "response_timeliness": 10.0,
        "resolution_rate": 15.0,
        "satisfaction": 16.0,
        "handling_efficiency": 7.5,
        "innovation": 15.0,
    }
    assert result.total == 63.5


def test_a_breach_seen_before_its_registration_still_counts() -> None:
    early = facts(
        ResponseBreachedFact(subject=A),
        registered(A),
        FirstResponseStoppedFact(subject=A, breached=True),
    )
    assert early.complaints[A].response_breached and score(early, POLICY).components["response_timeliness"] == 0


def test_the_first_response_counts_once_escalation_judges_its_clock_stopped_whichever_step_stopped_it() -> None:
    """Escalation's verdict decides: scoring knows no list of the steps that stop the clock."""
    undecided = facts(registered(A), registered(B), ResponseBreachedFact(subject=B))
    judged = facts(
        registered(A),
        registered(B),
        ResponseBreachedFact(subject=B),
        FirstResponseStoppedFact(subject=A, breached=False),  # e.g. closed, never acknowledged
    )
    late = facts(registered(A), FirstResponseStoppedFact(subject=A, breached=True))

    assert score(undecided, POLICY).components["response_timeliness"] == 0  # only b is decided, and late
    assert score(judged, POLICY).components["response_timeliness"] == 10
    assert score(late, POLICY).components["response_timeliness"] == 0


def test_a_response_recorded_before_escalation_judged_clocks_still_counts_as_on_time() -> None:
    late_b: list[AnyScoringFact] = [registered(A), registered(B), ResponseBreachedFact(subject=B)]
    legacy = facts(*late_b, AcknowledgedFact(subject=A))
    judged = facts(*late_b, FirstResponseStoppedFact(subject=A, breached=False))
    assert score(legacy, POLICY) == score(judged, POLICY)
    assert score(legacy, POLICY).components["response_timeliness"] == 10


def test_findings_deduct_their_points_doubled_when_overdue_and_negative_impact_costs_more() -> None:
    result = score(
        facts(
            FindingOpenedFact(subject=O1, points=2),
            FindingOpenedFact(subject=O2, points=3),
            OrderOverdueFact(subject=O2),
            registered(M, priority="major", channel="regulator_appeal"),
            CheckedFact(subject=M, substantiated=True),
        ),
        POLICY,
    )
    assert result.deductions == 2 + 3 * 2 + 5 + 10


def test_innovation_is_the_mean_rating_and_highlight_bonus_is_capped_then_the_total() -> None:
    inspections = facts(
        InspectedFact(subject=I1, innovation_rating=0.6, bonus=3.0),
        InspectedFact(subject=I2, innovation_rating=0.2, bonus=4.0),
        InspectedFact(subject=I3, bonus=0.0),  # not rated: leaves the mean alone
        FindingOpenedFact(subject=O1, points=3),
    )
    result = score(inspections, POLICY)
    # innovation: 15 x mean(0.6, 0.2) = 6; bonus 3 + 4 capped at 5; other components without data: 85
    assert result.components["innovation"] == 6.0
    assert (result.bonus, result.deductions) == (5.0, 3.0)
    assert result.total == 85 + 6 - 3 + 5


def test_the_bonus_cannot_lift_a_score_over_the_final_cap() -> None:
    assert score(facts(InspectedFact(subject=I1, bonus=5.0)), POLICY).total == 100


def test_a_substantiated_complaint_that_reached_the_media_costs_from_2026_12() -> None:
    exposed = facts(registered(M, channel="internet_media"), CheckedFact(subject=M, substantiated=True))
    assert score(exposed, POLICY).deductions == 0  # 2026-01 left media exposure out
    assert score(exposed, WITH_MEDIA_EXPOSURE).deductions == 10
    unfounded = facts(registered(M, channel="internet_media"), CheckedFact(subject=M, substantiated=False))
    assert score(unfounded, WITH_MEDIA_EXPOSURE).deductions == 0


NOW = datetime(2026, 11, 16, 2, tzinfo=UTC)


def source(event_type: str) -> SourceEvent:
    return SourceEvent(uuid.uuid4(), event_type, NOW)


Arrival = tuple[SourceEvent, AnyScoringFact]
Booking = tuple[float, float, dict[str, tuple[float, float]]]  # score before, after, and each component moved


def booked(card: Scorecard, *arrivals: Arrival) -> dict[str, Booking]:
    """Applies the facts in arrival order; what each source event was recorded as doing to the score."""
    for event, fact in arrivals:
        card.apply_fact(POLICY, event, fact, NOW)
    return {
        event.source_event_type: (
            event.score_before,
            event.score_after,
            {c["component"]: (c["before"], c["after"]) for c in event.changes},
        )
        for event in card.collect_events()
        if isinstance(event, Scorecard.FactApplied)
    }


def test_a_breach_that_arrives_before_its_registration_is_booked_to_the_breach_once_it_arrives() -> None:
    registration: Arrival = (source("ComplaintRegistered"), registered(A))
    breach: Arrival = (source("SlaBreached"), ResponseBreachedFact(subject=A))
    early = Scorecard.open("H", "2026-11")

    assert booked(early, breach) == {}  # nothing to score yet: the complaint is not registered here
    assert booked(early, registration) == {
        "ComplaintRegistered": (100, 70, {"resolution_rate": (30, 0)}),
        "SlaBreached": (70, 50, {"response_timeliness": (20, 0)}),
    }
    assert booked(Scorecard.open("H", "2026-11"), registration, breach) == booked(
        Scorecard.open("H", "2026-11"), breach, registration
    )
    assert early.score == 50 and not early.held


def test_an_order_seen_overdue_before_its_opening_books_the_doubled_deduction_to_the_overdue() -> None:
    overdue: Arrival = (source("SlaBreached"), OrderOverdueFact(subject=O1))
    opened: Arrival = (source("RectificationOrderOpened"), FindingOpenedFact(subject=O1, points=3))

    assert booked(Scorecard.open("H", "2026-11"), overdue, opened) == {
        "RectificationOrderOpened": (100, 97, {"deductions": (0, 3)}),
        "SlaBreached": (97, 94, {"deductions": (3, 6)}),
    }


def test_a_held_breach_is_kept_by_the_stored_scorecard_and_counted_once() -> None:
    scoring = ScoringApplication({}, {POLICY.version: POLICY}, clock=lambda: NOW)
    breach, fact = source("SlaBreached"), ResponseBreachedFact(subject=A)

    assert scoring.apply("H", "2026-11", breach, fact)
    assert not scoring.apply("H", "2026-11", breach, fact)  # redelivered while held
    assert scoring.apply("H", "2026-11", source("ComplaintRegistered"), registered(A))
    assert not scoring.apply("H", "2026-11", breach, fact)  # redelivered after it took effect

    card = scoring.scorecard("H", "2026-11")
    assert card is not None and card.score == 50 and not card.held
    *_, last = [e for e in scoring.repository.event_store.get(card.id) if isinstance(e, Scorecard.FactApplied)]
    assert (last.source_event_id, last.timestamp) == (breach.event_id, NOW)  # recorded at the scoring clock's time


def standing(
    hall_id: str,
    score: float,
    level: int = 1,
    ownership: str = "self_operated",
    inspections: int = 1,
    tie_break: tuple[float, ...] = (),
) -> Standing:
    return Standing(hall_id, level, ownership, score, inspections, tie_break)


def test_quotas_drop_the_overflow_by_rank_and_a_tie_at_the_boundary_drops_together() -> None:
    # 20 graded halls: 1 excellent place (5%), 4 good places (20%).
    scores = [99, 97, 96, 94, 93, 93, 91, 90, 85, 84, 83, 82, 81, 80, 79, 70, 60, 50, 40, 30]
    halls = [standing(f"H{i:02}", value) for i, value in enumerate(scores)]
    halls += [standing("P1", 100, ownership="partner"), standing("L4", 100, level=4)]

    graded = {hall.hall_id: hall for hall in grade_halls(halls, POLICY)}

    assert [graded[f"H{i:02}"].grade for i in range(8)] == [
        "excellent",  # 99: the only excellent place
        "good",  # 97 and 96 drop from excellent and take good places 1 and 2
        "good",
        "good",  # 94: good place 3
        "meets",  # 93 and 93 tie for good place 4: both drop, and place 4 stays empty
        "meets",
        "meets",  # 91 and 90: over the quota
        "meets",
    ]
    assert graded["H01"].dropped_by_quota and not graded["H03"].dropped_by_quota
    assert (graded["H04"].rank, graded["H05"].rank, graded["H06"].rank) == (5, 5, 7)
    assert [h for h, hall in graded.items() if hall.tied_at_boundary] == ["H04", "H05"]
    assert graded["H14"].grade == "below"
    assert graded["P1"].grade is None and graded["P1"].ungraded_reason == "partner hall: not graded"
    assert graded["L4"].rank is None and "level-4" in (graded["L4"].ungraded_reason or "")


def test_a_tie_for_the_only_place_leaves_it_empty() -> None:
    halls = [standing(f"H{i:02}", 99 if i < 2 else 50) for i in range(20)]
    graded = grade_halls(halls, POLICY)
    assert [hall.grade for hall in graded[:2]] == ["good", "good"]


def test_periods_are_china_time_months_even_for_far_past_instants() -> None:
    assert period_of(datetime(2026, 11, 30, 16, 30, tzinfo=UTC)) == "2026-12"  # 00:30 on 1 December in China
    assert period_start(period_of(datetime(18, 8, 18, tzinfo=UTC))) == datetime(18, 8, 1, tzinfo=CHINA_TIME)


def test_a_policy_written_before_a_component_gives_it_no_weight() -> None:
    draft = POLICY.model_dump(mode="json")
    del draft["weights"]["innovation"]
    older = ScoringPolicy.model_validate(draft)

    assert older.weights["innovation"] == 0
    rated = facts(InspectedFact(subject=I1, bonus=0, innovation_rating=0.0))
    assert score(rated, older).total == 85  # the other components' full marks; innovation moves nothing


def test_halls_without_evidence_are_not_assessed_and_ties_go_through_the_keys_then_to_the_campaign() -> None:
    """The 40 halls of issue 13 under policy 2026-12, worked out by hand.

    10 halls with no inspection would score 100: not assessed, so 30 halls make the quota base,
    1 excellent place and 6 good. The two at 97 differ on inspection score: one excellent, one drops to
    good. Good then holds it and ten at 92, of which four are told apart by the keys and six are equal on
    every key; the sixth good place falls inside those six, so all six are tied at the boundary and drop.
    """
    policy = load_scoring_policies()["2026-12"]
    assert policy.tie_break == DEFAULT_TIE_BREAK  # inspection score, satisfaction, response, substantiated
    halls = [standing(f"E{n:02}", 100, inspections=0) for n in range(10)]
    halls += [standing("A97", 97, tie_break=(15, 20, 20, 0)), standing("B97", 97, tie_break=(14, 20, 20, 0))]
    halls += [standing(f"G{n}", 92, tie_break=(15 - n, 20, 20, 0)) for n in range(1, 5)]
    halls += [standing(f"G{n}", 92, tie_break=(10, 18, 20, -1)) for n in range(5, 11)]
    halls += [standing(f"M{n:02}", 85) for n in range(18)]

    graded = {hall.hall_id: hall for hall in grade_halls(halls, policy)}

    assert {h: graded[h].status for h in ("E00", "E09")} == {"E00": "not_assessed", "E09": "not_assessed"}
    assert graded["E00"].grade is None and graded["E00"].rank is None
    assert graded["E00"].ungraded_reason == "not assessed: 0 inspection(s) in the period, the policy asks for 1"
    by_grade: dict[str | None, set[str]] = {}
    for hall in graded.values():
        by_grade.setdefault(hall.grade, set()).add(hall.hall_id)
    assert by_grade["excellent"] == {"A97"}
    assert by_grade["good"] == {"B97", "G1", "G2", "G3", "G4"}
    assert by_grade["meets"] == {f"G{n}" for n in range(5, 11)} | {f"M{n:02}" for n in range(18)}
    assert {h for h, hall in graded.items() if hall.tied_at_boundary} == {f"G{n}" for n in range(5, 11)}
    assert graded["B97"].dropped_by_quota and not graded["B97"].tied_at_boundary
    assert [graded[h].rank for h in ("A97", "B97", "G1", "G4", "G5", "G10", "M00")] == [1, 2, 3, 6, 7, 7, 13]


def test_halls_equal_on_every_key_inside_a_quota_share_their_rank_and_are_not_flagged() -> None:
    halls = [standing(f"H{n:02}", 92 if n < 2 else 89 - n, tie_break=(1.0,)) for n in range(20)]  # 4 good places
    graded = {hall.hall_id: hall for hall in grade_halls(halls, POLICY)}
    assert [(graded[h].grade, graded[h].rank, graded[h].tied_at_boundary) for h in ("H00", "H01")] == [
        ("good", 1, False),
        ("good", 1, False),
    ]


def test_tie_break_values_come_from_the_periods_facts_in_the_policys_order() -> None:
    policy = load_scoring_policies()["2026-12"]
    facts = PeriodFacts()
    inspection, order, complaint = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for fact in (
        InspectedFact(subject=inspection, bonus=2.0, innovation_rating=0.5),
        FindingOpenedFact(subject=order, points=3),
        ComplaintRegisteredFact(subject=complaint, priority="normal", channel="hotline"),
        FirstResponseStoppedFact(subject=complaint, breached=True),
        FeedbackFact(subject=complaint, satisfaction="basically_satisfied"),
        CheckedFact(subject=complaint, substantiated=True),
    ):
        facts.apply(fact)

    # inspection: innovation 15 * 0.5 + bonus 2 - finding 3; satisfaction 20 * 0.8; response 0 of 1 on time
    assert tie_break_values(facts, policy) == (6.5, 16.0, 0.0, -1)
    reordered = policy.model_copy(update={"tie_break": ("fewer_substantiated_complaints", "satisfaction")})
    assert tie_break_values(facts, reordered) == (-1, 16.0)


def test_a_policy_from_before_evidence_and_tie_breaks_asks_for_one_inspection_and_the_default_keys() -> None:
    draft = POLICY.model_dump(mode="json")
    draft.pop("evidence"), draft.pop("tie_break")
    policy = ScoringPolicy.model_validate(draft)
    assert (policy.evidence.inspections, policy.tie_break) == (1, DEFAULT_TIE_BREAK)
    with pytest.raises(ValidationError, match="at most once"):
        ScoringPolicy.model_validate({**draft, "tie_break": ["satisfaction", "satisfaction"]})


def test_a_quarter_spans_three_months_and_a_year_twelve() -> None:
    assert months_of("2026-Q4") == ["2026-10", "2026-11", "2026-12"]
    assert months_of("2027-Q1")[0] == "2027-01" and months_of("2026") == [f"2026-{m:02}" for m in range(1, 13)]
    assert months_of("2026-11") == ["2026-11"]
    with pytest.raises(ValueError, match="not a month"):
        months_of("2026-Q5")


def test_satisfaction_counts_only_from_the_sources_the_policy_accepts() -> None:
    policy = load_scoring_policies()["2026-12"]
    assert policy.satisfaction_sources == {"customer", "other_unit"}  # the default: never the hall alone
    complaint = uuid.uuid4()
    facts = PeriodFacts()
    facts.apply(ComplaintRegisteredFact(subject=complaint, priority="normal", channel="app"))
    facts.apply(FeedbackFact(subject=complaint, satisfaction="unsatisfied", source="graded_hall"))

    assert score(facts, policy).components["satisfaction"] == 20  # no verdict it accepts: without data
    facts.apply(FeedbackFact(subject=complaint, satisfaction="basically_satisfied", source="customer"))
    assert score(facts, policy).components["satisfaction"] == 16
    trusting = policy.model_copy(update={"satisfaction_sources": frozenset({"graded_hall", "customer"})})
    assert score(facts, trusting).components["satisfaction"] == round(20 * (0 + 0.8) / 2, 2)
