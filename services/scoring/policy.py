"""Scoring policies: versioned data files in `policies/`, each effective from a date.

They hold both the score's rules (weights, deductions, caps) and the grades' (thresholds and
quotas), so scores and grades are worked out here alone. A new version is a new file, never an edit.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, field_validator, model_validator

from shared.clock import CHINA_TIME
from shared.contracts import RootCauseClass, SatisfactionSource
from shared.validation import RequestModel
from shared.versioned import in_force_at, load_version

SCORING_POLICY_DIR = Path(__file__).parent / "policies"
Component = Literal["response_timeliness", "resolution_rate", "satisfaction", "handling_efficiency", "innovation"]
COMPONENTS: tuple[Component, ...] = (
    "response_timeliness",
    "resolution_rate",
    "satisfaction",
    "handling_efficiency",
    "innovation",
)
Grade = Literal["excellent", "good", "meets", "below"]
# What decides between halls of equal score, each the higher the better (see `scorecard.tie_break_values`).
TieBreakKey = Literal["inspection_score", "satisfaction", "response_timeliness", "fewer_substantiated_complaints"]
DEFAULT_TIE_BREAK: tuple[TieBreakKey, ...] = (
    "inspection_score",
    "satisfaction",
    "response_timeliness",
    "fewer_substantiated_complaints",
)
SATISFACTION_LEVELS = ("satisfied", "basically_satisfied", "unsatisfied")
# The bounds every policy meets, whether a file or a what-if draft: scores are out of 100, so no
# weight, deduction, cap or threshold goes beyond it (and RequestModel refuses NaN and Infinity).
Points = Annotated[float, Field(ge=0, le=100)]
Share = Annotated[float, Field(ge=0, le=1)]


class InvalidScoringPolicy(ValueError):
    pass


class GradeThresholds(RequestModel):
    model_config = ConfigDict(frozen=True)
    excellent: Points
    good: Points
    meets: Points

    @model_validator(mode="after")
    def _descending(self) -> GradeThresholds:
        if not self.excellent > self.good > self.meets:
            raise ValueError("thresholds must fall from excellent to good to meets")
        return self

    def grade_of(self, score: float) -> Grade:
        if score >= self.excellent:
            return "excellent"
        if score >= self.good:
            return "good"
        if score >= self.meets:
            return "meets"
        return "below"


class Quotas(RequestModel):
    """The most halls, as a share of the graded halls in a scope, that may hold each grade."""

    model_config = ConfigDict(frozen=True)
    excellent: Share
    good: Share


class Evidence(RequestModel):
    """What a hall needs in the period to be graded; without it, it is "not assessed" and takes no quota place."""

    model_config = ConfigDict(frozen=True)
    inspections: int = Field(default=1, ge=0, le=100)  # the seeds inspect every hall monthly


# Who bears a complaint's points, by the class of its root cause: the hall (its score), the unit above it,
# or a named department (reported, not graded). Neither of the last two moves the hall's score.
Bearer = Annotated[str, Field(pattern=r"^(hall|unit_above|department:[a-z_]{1,40})$")]
DEFAULT_ATTRIBUTION: dict[RootCauseClass, str] = {
    "hall_service": "hall",
    "hall_environment": "hall",
    "customer_side": "hall",
    "unclassified": "hall",
    "business_rules": "unit_above",
    "billing_system": "department:billing",
    "network": "department:network",
    "product_policy": "department:product",
    "partner": "department:partner_channels",
}
Outcome = Literal["reward", "penalty", "none"]
DEFAULT_OUTCOMES: dict[Grade, Outcome] = {"excellent": "reward", "good": "reward", "meets": "none", "below": "penalty"}


class CampaignRules(RequestModel):
    """The evaluation campaign's margins (差额) and what each certified grade brings (README, "Evaluation
    campaign"). The seeds: the province certifies "good" competitively, fewer than its cities nominated,
    and the group certifies "excellent" with a 20% margin, at most 80% of the nominees."""

    model_config = ConfigDict(frozen=True)
    province_margin: int = Field(default=1, ge=0, le=1000)  # how many fewer than nominated, at least
    group_certified_share: Share = 0.8
    outcomes: dict[Grade, Outcome] = Field(default_factory=lambda: dict(DEFAULT_OUTCOMES))

    @field_validator("outcomes")
    @classmethod
    def _every_grade(cls, outcomes: dict[Grade, Outcome]) -> dict[Grade, Outcome]:
        """A grade the policy does not name brings what the defaults say."""
        return {**DEFAULT_OUTCOMES, **outcomes}


class ScoringPolicy(RequestModel):
    """A policy file, or a draft sent to what-if: both meet the same bounds."""

    model_config = ConfigDict(frozen=True)
    version: str = Field(min_length=1, max_length=100)
    effective_from: AwareDatetime
    source: str = Field(max_length=2000)
    period: Literal["month"]
    weights: dict[Component, Points]
    without_data: Literal["full_marks", "zero"]
    satisfaction_values: dict[str, Share]
    finding_deduction_per_point: Points
    overdue_multiplier: float = Field(ge=1, le=10)
    # A kind left out costs nothing (2026-01 forgot media exposure; 2026-12 adds it).
    negative_impact: dict[Literal["substantiated_major_complaint", "regulator_appeal_upheld", "media_exposure"], Points]
    bonus_cap: Points
    final_cap: Points = Field(gt=0)
    grade_thresholds: GradeThresholds
    quotas: Quotas
    # Keys a policy written before them leaves out take these defaults (README, "Scoring policy").
    evidence: Evidence = Evidence()
    # Whose satisfaction verdicts count: by default the customer's own and other units', never the graded
    # hall's alone (it would grade itself).
    satisfaction_sources: frozenset[SatisfactionSource] = Field(
        default=frozenset({"customer", "other_unit"}), max_length=3
    )
    tie_break: tuple[TieBreakKey, ...] = Field(default=DEFAULT_TIE_BREAK, max_length=len(DEFAULT_TIE_BREAK))
    # How a quarter or a year is scored from its months: the mean of each hall's monthly scores.
    longer_periods: Literal["mean_of_months"] = "mean_of_months"
    campaign: CampaignRules = CampaignRules()
    attribution: dict[RootCauseClass, Bearer] = Field(default_factory=lambda: dict(DEFAULT_ATTRIBUTION))
    # A hall whose level, ownership or closure changes within a period is graded as it was at the period's end
    # (`period_end`) or at its start.
    hall_as_at: Literal["period_end", "period_start"] = "period_end"
    # Points off for each repeat complaint (重复投诉) the hall bears: its customer had complained within the
    # complaints service's repeat window before. 0: repeats weigh nothing beyond the complaint itself.
    repeat_deduction: Points = 0
    # Whether the children of a mass incident (one outage behind them all) count in the score of the hall that
    # happened to receive each; the monthly report counts them either way.
    incident_children_count: bool = False

    @field_validator("weights")
    @classmethod
    def _every_component(cls, weights: dict[Component, float]) -> dict[Component, float]:
        """A component the policy does not name weighs 0: a policy written before a component was
        added keeps validating, and keeps scoring as it did."""
        return {name: weights.get(name, 0.0) for name in COMPONENTS}

    @field_validator("attribution")
    @classmethod
    def _every_class(cls, attribution: dict[RootCauseClass, str]) -> dict[RootCauseClass, str]:
        """A class the policy does not name is borne as the defaults say."""
        return {**DEFAULT_ATTRIBUTION, **attribution}

    def hall_instant(self, period: str) -> datetime:
        """The instant whose level, ownership and closure grade a hall for the period (`hall_as_at`)."""
        months = months_of(period)
        if self.hall_as_at == "period_start":
            return period_start(months[0])
        next_month = (period_start(months[-1]) + timedelta(days=32)).replace(day=1)
        return next_month - timedelta(microseconds=1)  # the period's last instant

    @property
    def hall_bears(self) -> frozenset[str]:
        """The root-cause classes whose complaints count in the hall's own score."""
        return frozenset(name for name, bearer in self.attribution.items() if bearer == "hall")

    @field_validator("tie_break")
    @classmethod
    def _each_key_once(cls, keys: tuple[TieBreakKey, ...]) -> tuple[TieBreakKey, ...]:
        if len(set(keys)) != len(keys):
            raise ValueError("name each tie-break key at most once")
        return keys

    @field_validator("satisfaction_values")
    @classmethod
    def _every_level(cls, values: dict[str, float]) -> dict[str, float]:
        if set(values) != set(SATISFACTION_LEVELS):
            raise ValueError(f"give exactly these levels: {', '.join(SATISFACTION_LEVELS)}")
        return values


def load_scoring_policy(path: Path) -> ScoringPolicy:
    return load_version(path, ScoringPolicy, InvalidScoringPolicy)


def load_scoring_policies(directory: Path = SCORING_POLICY_DIR) -> dict[str, ScoringPolicy]:
    policies = {path.stem: load_scoring_policy(path) for path in sorted(directory.glob("*.json"))}
    if not policies:
        raise InvalidScoringPolicy(f"no scoring policy in {directory}")
    return policies


def scoring_policy_at(policies: dict[str, ScoringPolicy], instant: datetime) -> ScoringPolicy:
    return in_force_at(policies.values(), instant, InvalidScoringPolicy, "scoring policy")


def empty_score(policy: ScoringPolicy) -> float:
    """The score of a hall with no events in the period: every component without data, nothing deducted."""
    without_data = sum(policy.weights.values()) if policy.without_data == "full_marks" else 0.0
    return min(without_data, policy.final_cap)


def period_start(period: str) -> datetime:
    return datetime.strptime(period, "%Y-%m").replace(tzinfo=CHINA_TIME)


def months_of(period: str) -> list[str]:
    """The calendar months a grading period spans: a month ("2026-11") itself, a quarter's ("2026-Q4")
    three or a year's ("2026") twelve."""
    if re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
        return [period]
    if quarter := re.fullmatch(r"(\d{4})-Q([1-4])", period):
        last = 3 * int(quarter[2])
        return [f"{quarter[1]}-{month:02}" for month in range(last - 2, last + 1)]
    if re.fullmatch(r"\d{4}", period):
        return [f"{period}-{month:02}" for month in range(1, 13)]
    raise ValueError(f"{period!r} is not a month (2026-11), a quarter (2026-Q4) or a year (2026)")
