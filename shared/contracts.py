"""Versioned integration-event contracts: what crosses a service boundary.

Internal domain events may change freely; these change only by adding a new
`schema_version`. A message that is not a known, well-formed contract is refused
with `InvalidEvent` whose message names the problem.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c1e-2b7a-4f0e-9a51-8f0c1d2e3a4b")


# Who gave a satisfaction verdict: the customer (their survey), staff of the graded hall, or staff of
# another unit (e.g. the city's callback team, 回访).
SatisfactionSource = Literal["customer", "graded_hall", "other_unit"]
# What a check found caused the complaint; the scoring policy says who bears each class's points.
# `unclassified`: checks recorded before classes were (the hall bore them).
RootCauseClass = Literal[
    "hall_service",
    "hall_environment",
    "business_rules",
    "billing_system",
    "network",
    "product_policy",
    "partner",
    "customer_side",
    "unclassified",
]


# The SLA clocks escalation runs: a complaint's two and its keep-the-customer-informed clock (which only
# warns), a rectification order's, and its appeal's decision.
ClockName = Literal["first_response", "resolution", "keep_informed", "rectification", "appeal_decision"]
# What every pause waited for before pauses had reasons (ComplaintPausedV1).
PAUSE_REASON_BEFORE_CODES = "awaiting_customer"


class InvalidEvent(ValueError):
    """The message is not a valid integration event; the text says why."""


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    event_type: ClassVar[str]
    schema_version: ClassVar[int]


class HallRegisteredV1(Contract):
    event_type = "HallRegistered"
    schema_version = 1

    hall_id: str
    name: str
    province: str
    city: str
    level: int = Field(ge=1, le=4)
    ownership: Literal["self_operated", "partner"]


class HallChangedV1(Contract):
    """From `effective_from` on (which may lie before or after `at`), the hall has each attribute given; None:
    as it was. Changes apply in order of effect, so a consumer replays them to know the hall at any instant."""

    event_type = "HallChanged"
    schema_version = 1
    hall_id: str
    effective_from: AwareDatetime
    name: str | None
    level: int | None = Field(ge=1, le=4)
    ownership: Literal["self_operated", "partner"] | None
    closed: bool | None
    at: AwareDatetime


class ComplaintRegisteredV1(Contract):
    """No customer name or phone: personal data stays in the complaints service."""

    event_type = "ComplaintRegistered"
    schema_version = 1

    complaint_number: str
    hall_id: str
    channel: str
    category: str
    priority: str
    owner: str
    received_at: AwareDatetime


class ComplaintRegisteredV2(ComplaintRegisteredV1):
    """Adds where the hall sits in the organisation, so a consumer needs no hall event first.

    Halls arrive on other partitions than their complaints, so a consumer cannot rely
    on having seen the hall; clocks need the unit at once (business hours, escalation targets).
    """

    schema_version = 2

    province: str
    city: str


class ComplaintRegisteredV3(ComplaintRegisteredV2):
    """Adds how many earlier complaints the same customer made within the repeat window (重复投诉), found
    by a keyed digest of the phone inside the complaints service; neither phone nor digest leaves it."""

    schema_version = 3

    repeat_count: int = Field(ge=0)


class LoopStep(Contract):
    """A step of a closed loop (complaint or rectification order): who did it, when and why."""

    actor: str
    reason: str
    at: AwareDatetime


class ComplaintResolvedOnSpotV1(LoopStep):
    event_type = "ComplaintResolvedOnSpot"
    schema_version = 1


class ComplaintDispatchedV1(LoopStep):
    event_type = "ComplaintDispatched"
    schema_version = 1
    to_unit: str


class ComplaintHandOffAcceptedV1(LoopStep):
    event_type = "ComplaintHandOffAccepted"
    schema_version = 1
    unit: str


class ComplaintAcknowledgedV1(LoopStep):
    event_type = "ComplaintAcknowledged"
    schema_version = 1


class ComplaintCheckedV1(LoopStep):
    event_type = "ComplaintChecked"
    schema_version = 1
    substantiated: bool
    root_cause: str
    responsible_unit: str


class ComplaintCheckedV2(ComplaintCheckedV1):
    """Names the root cause's class, and a responsible unit that is a registered hall or a unit above the
    complaint's hall. Version 1 did neither: its complaints' points fell on the hall."""

    schema_version = 2
    root_cause_class: RootCauseClass = "unclassified"


class ComplaintCheckReviewedV1(LoopStep):
    """A unit above the complaint's hall rules again on whether it was substantiated: the hall's own
    ruling moves its own score, so it does not stand alone."""

    event_type = "ComplaintCheckReviewed"
    schema_version = 1
    substantiated: bool
    reviewing_unit: str


class CustomerContactedV1(LoopStep):
    event_type = "CustomerContacted"
    schema_version = 1
    outcome: str


class ComplaintRectifiedV1(LoopStep):
    event_type = "ComplaintRectified"
    schema_version = 1
    action: str
    rectification_owner: str
    deadline: AwareDatetime
    evidence: list[str]


class FeedbackReceivedV1(LoopStep):
    event_type = "FeedbackReceived"
    schema_version = 1
    satisfaction: Literal["satisfied", "basically_satisfied", "unsatisfied"]
    score: int = Field(ge=1, le=5)


class FeedbackReceivedV2(FeedbackReceivedV1):
    """Says who gave the verdict: the customer (their survey), staff of the graded hall, or staff of
    another unit (e.g. a callback team). Version 1 did not: staff, of a unit unknown."""

    schema_version = 2
    source: SatisfactionSource


class ComplaintClosedV1(LoopStep):
    event_type = "ComplaintClosed"
    schema_version = 1


class ComplaintReopenedV1(LoopStep):
    event_type = "ComplaintReopened"
    schema_version = 1


class CallbackMadeV1(LoopStep):
    event_type = "CallbackMade"
    schema_version = 1
    outcome: str


class ComplaintPausedV1(LoopStep):
    event_type = "ComplaintPaused"
    schema_version = 1


class ComplaintPausedV2(ComplaintPausedV1):
    """With the catalogue's reason code: the SLA policy says which clocks it stops, and for how long."""

    schema_version = 2
    reason_code: str = PAUSE_REASON_BEFORE_CODES


class ComplaintReclassifiedV1(LoopStep):
    """A wrong category, priority or channel corrected; the SLA limits are derived anew from the receipt."""

    event_type = "ComplaintReclassified"
    schema_version = 1
    category: str
    priority: str
    channel: str
    previous_category: str
    previous_priority: str
    previous_channel: str


class ComplaintPauseApprovedV1(LoopStep):
    """A unit above the hall lets the pause under way stop the SLA clocks past the policy's cap."""

    event_type = "ComplaintPauseApproved"
    schema_version = 1
    approving_unit: str


class ComplaintResumedV1(LoopStep):
    event_type = "ComplaintResumed"
    schema_version = 1


class ComplaintEscalatedV1(LoopStep):
    event_type = "ComplaintEscalated"
    schema_version = 1
    level: int = Field(ge=1)
    target_unit: str


class CustomerErasedV1(LoopStep):
    """The customer's personal data was erased (its key destroyed): on request, or after retention."""

    event_type = "CustomerErased"
    schema_version = 1


class OfIncident(BaseModel):
    """A step taken for every child of a mass incident at once (a bulk action): which incident, else None."""

    incident_id: uuid.UUID | None = None


class ComplaintAcknowledgedV2(ComplaintAcknowledgedV1, OfIncident):
    schema_version = 2


class ComplaintPausedV3(ComplaintPausedV2, OfIncident):
    schema_version = 3


class ComplaintResumedV2(ComplaintResumedV1, OfIncident):
    schema_version = 2


class ComplaintCheckedV3(ComplaintCheckedV2, OfIncident):
    schema_version = 3


class CustomerContactedV2(CustomerContactedV1, OfIncident):
    schema_version = 2


class ComplaintRectifiedV2(ComplaintRectifiedV1, OfIncident):
    schema_version = 2


class EvidenceFile(BaseModel):
    """An uploaded file a step refers to: its SHA-256 (the attachment's id), size, type and name; nothing of
    who uploaded it."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    content_type: str
    name: str


class WithAttachments(BaseModel):
    """The files a step refers to; none in messages from before steps could."""

    attachments: list[EvidenceFile] = []


class ComplaintRectifiedV3(ComplaintRectifiedV2, WithAttachments):
    schema_version = 3


class ComplaintClosedV2(ComplaintClosedV1, OfIncident):
    schema_version = 2


class ComplaintLinkedToIncidentV1(LoopStep):
    """The complaint is one of a mass incident's children (重大投诉 / 群体性投诉): one cause, handled together."""

    event_type = "ComplaintLinkedToIncident"
    schema_version = 1
    incident_id: uuid.UUID


class ComplaintUnlinkedFromIncidentV1(LoopStep):
    event_type = "ComplaintUnlinkedFromIncident"
    schema_version = 1
    incident_id: uuid.UUID


class IncidentOpenedV1(Contract):
    """A mass incident: one cause (a network outage) behind the complaints of an area and category within a
    time window. No personal data: the cause is staff's text, masked."""

    event_type = "IncidentOpened"
    schema_version = 1
    cause: str
    area: str  # an organisation unit path: the province, city or hall affected
    category: str
    window_start: AwareDatetime
    window_end: AwareDatetime
    opened_by: str
    at: AwareDatetime


class CustomerNotifiedV1(Contract):
    """The complaint's customer was sent a notification: which trigger, channel and template version, never the
    address or the words (the template's version names them). Its aggregate is the complaint's notification
    record, beside the complaint."""

    event_type = "CustomerNotified"
    schema_version = 1
    complaint_id: uuid.UUID
    trigger: str
    channel: Literal["sms", "email", "wechat"]
    template: str
    template_version: int = Field(ge=1)
    attempts: int = Field(ge=1)
    at: AwareDatetime


class NotificationFailedV1(CustomerNotifiedV1):
    """A notification that could not be delivered after the policy's attempts, and why."""

    event_type = "NotificationFailed"
    reason: str


# What the complaint's customer was told, or could not be: records beside the loop, not steps of it.
CUSTOMER_NOTIFICATIONS: tuple[type[CustomerNotifiedV1], ...] = (CustomerNotifiedV1, NotificationFailedV1)


COMPLAINT_STEPS: tuple[type[LoopStep], ...] = (
    ComplaintResolvedOnSpotV1,
    ComplaintDispatchedV1,
    ComplaintHandOffAcceptedV1,
    ComplaintAcknowledgedV1,
    ComplaintCheckedV1,
    ComplaintCheckReviewedV1,
    CustomerContactedV1,
    ComplaintRectifiedV1,
    FeedbackReceivedV1,
    ComplaintClosedV1,
    ComplaintReopenedV1,
    CallbackMadeV1,
    ComplaintPausedV1,
    ComplaintPauseApprovedV1,
    ComplaintResumedV1,
    ComplaintEscalatedV1,
    CustomerErasedV1,
    ComplaintReclassifiedV1,
    ComplaintLinkedToIncidentV1,
    ComplaintUnlinkedFromIncidentV1,
)
# The newer versions of steps above, each a subclass of its first version.
COMPLAINT_STEP_VERSIONS: tuple[type[LoopStep], ...] = (
    ComplaintCheckedV2,
    FeedbackReceivedV2,
    ComplaintPausedV2,
    ComplaintAcknowledgedV2,
    ComplaintPausedV3,
    ComplaintResumedV2,
    ComplaintCheckedV3,
    CustomerContactedV2,
    ComplaintRectifiedV2,
    ComplaintClosedV2,
    ComplaintRectifiedV3,
)


class ChecklistResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    item_id: str
    passed: bool


class FindingRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    order_id: uuid.UUID
    item_id: str
    points: int


class InspectionRecordedV1(Contract):
    event_type = "InspectionRecorded"
    schema_version = 1

    hall_id: str
    inspection_type: Literal["mystery_shopper", "third_party", "cross_inspection", "self_check"]
    inspector: str
    checklist_version: str
    score: int
    max_score: int
    results: list[ChecklistResult]
    findings: list[FindingRef]
    at: AwareDatetime


class Highlight(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    description: str
    points: float


class InspectionRecordedV2(InspectionRecordedV1):
    """Adds the inspector's rating of the hall's service innovation (0-1, None if not assessed)
    and the highlights (亮点) awarded bonus points."""

    schema_version = 2

    innovation_rating: float | None
    highlights: list[Highlight]


class RectificationOrderOpenedV1(Contract):
    event_type = "RectificationOrderOpened"
    schema_version = 1

    inspection_id: uuid.UUID
    hall_id: str
    item_id: str
    points: int
    description: str
    deadline: AwareDatetime
    at: AwareDatetime


class RectificationOrderOpenedV2(RectificationOrderOpenedV1):
    """Adds where the hall sits in the organisation (see ComplaintRegisteredV2)."""

    schema_version = 2

    province: str
    city: str


class RectificationOrderOpenedV3(RectificationOrderOpenedV2, WithAttachments):
    """Adds the files the finding referred to (the inspector's photos, recordings)."""

    schema_version = 3


class OrderCommunicatedV1(LoopStep):
    event_type = "RectificationOrderCommunicated"
    schema_version = 1


class OrderAcknowledgedV1(LoopStep):
    event_type = "RectificationOrderAcknowledged"
    schema_version = 1


class OrderRectifiedV1(LoopStep):
    event_type = "RectificationOrderRectified"
    schema_version = 1
    report: str
    evidence: list[str]


class OrderRectifiedV2(OrderRectifiedV1, WithAttachments):
    schema_version = 2


class OrderVerifiedV1(LoopStep):
    event_type = "RectificationOrderVerified"
    schema_version = 1


class OrderRejectedV1(LoopStep):
    event_type = "RectificationOrderRejected"
    schema_version = 1


class OrderAppealedV1(LoopStep):
    """The hall appeals (申诉) against the finding; the unit above decides, against its own SLA clock."""

    event_type = "RectificationOrderAppealed"
    schema_version = 1


class OrderAppealDecidedV1(LoopStep):
    """Upheld, the finding costs the hall nothing (scoring's `DeductionWaived`)."""

    event_type = "RectificationOrderAppealDecided"
    schema_version = 1
    upheld: bool
    deciding_unit: str
    hall_id: str
    order_opened_at: AwareDatetime  # the finding's period is the opening's


ORDER_STEPS: tuple[type[LoopStep], ...] = (
    OrderAppealedV1,
    OrderAppealDecidedV1,
    OrderCommunicatedV1,
    OrderAcknowledgedV1,
    OrderRectifiedV1,
    OrderVerifiedV1,
    OrderRejectedV1,
)
# The newer versions of order steps above, each a subclass of its first version.
ORDER_STEP_VERSIONS: tuple[type[LoopStep], ...] = (OrderRectifiedV2,)


class SlaMilestone(Contract):
    """A clock of a complaint or rectification order reached a share of its limit in working time."""

    subject_id: uuid.UUID
    subject_kind: Literal["complaint", "rectification_order"]
    subject_started_at: AwareDatetime  # when the complaint was received or the order opened: its scoring period
    hall_id: str
    clock: ClockName
    fraction: float = Field(gt=0)
    due_at: AwareDatetime
    at: AwareDatetime
    policy_version: str


class SlaWarningV1(SlaMilestone):
    event_type = "SlaWarning"
    schema_version = 1


class SlaBreachedV1(SlaMilestone):
    """Level 1: the hall's manager is told."""

    event_type = "SlaBreached"
    schema_version = 1
    level: int = Field(ge=1)
    target_unit: str


class SlaEscalatedV1(SlaMilestone):
    """Each further step hands the case one level up: city, province, group."""

    event_type = "SlaEscalated"
    schema_version = 1
    level: int = Field(ge=2)
    target_unit: str


class SlaEscalatedV2(SlaEscalatedV1):
    """Says why: the clock ran past its limit (`overdue`), or the complaint is of a kind the policy raises
    on arrival, such as a major complaint or a regulator appeal (`classification`, at `fraction` 0)."""

    schema_version = 2
    fraction: float = Field(ge=0)
    raised_by: Literal["overdue", "classification"]


class SlaRecalculatedV1(Contract):
    """A policy or calendar change moved an open subject's deadlines."""

    event_type = "SlaRecalculated"
    schema_version = 1
    subject_id: uuid.UUID
    previous_rules_version: str
    rules_version: str
    previous_deadlines: dict[str, AwareDatetime | None]
    deadlines: dict[str, AwareDatetime | None]
    at: AwareDatetime


class SlaScheduledV1(Contract):
    """A complaint's (or order's) clocks after a step moved them: each clock's breach deadline, None once
    it stopped or while it is paused. Work queues sort by it; the rules that set it are escalation's."""

    event_type = "SlaScheduled"
    schema_version = 1
    subject_id: uuid.UUID
    deadlines: dict[ClockName, AwareDatetime | None]
    at: AwareDatetime


class SlaClockStoppedV1(Contract):
    """Escalation's verdict on a clock that stopped: met, or breached if its breach fired first.

    Escalation alone decides which steps stop which clock; consumers take this verdict rather than
    reading steps. One per stop: a clock that a reopen within the window restarted (`reopened`, the
    same `clock_started_at`) gets a second verdict when it stops again, which replaces the first.
    """

    event_type = "SlaClockStopped"
    schema_version = 1
    subject_id: uuid.UUID
    subject_kind: Literal["complaint", "rectification_order"]
    subject_started_at: AwareDatetime  # when the complaint was received or the order opened: its scoring period
    hall_id: str
    clock: ClockName
    clock_started_at: AwareDatetime  # a late reopen starts a new resolution clock
    outcome: Literal["met", "breached"]
    working_seconds: float = Field(ge=0)
    limit_working_seconds: float = Field(gt=0)
    policy_version: str
    reopened: bool  # the clock ran again after the complaint was reopened or the order's report rejected
    stopped_at: AwareDatetime


SLA_MILESTONES: tuple[type[SlaMilestone], ...] = (SlaWarningV1, SlaBreachedV1, SlaEscalatedV1)
SLA_EVENTS: tuple[type[Contract], ...] = (*SLA_MILESTONES, SlaRecalculatedV1)


class ScoreChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    component: str
    before: float
    after: float


class ScoringFact(BaseModel):
    """What one event established for a hall's score, as scoring applies it; `kind` names which fact."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    subject: uuid.UUID  # the complaint, rectification order or inspection the fact is about


class ComplaintRegisteredFact(ScoringFact):
    kind: Literal["complaint_registered"] = "complaint_registered"
    priority: str
    channel: str
    category: str | None = None  # None: recorded before the monthly report counted categories
    repeat_count: int = 0  # the customer's earlier complaints in the repeat window (重复投诉)


class FirstResponseStoppedFact(ScoringFact):
    """Escalation's verdict: the complaint's first-response clock stopped, in time or breached."""

    kind: Literal["first_response_stopped"] = "first_response_stopped"
    breached: bool


class AcknowledgedFact(ScoringFact):
    """Recorded before escalation published verdicts: the acknowledgement step, taken as the first response."""

    kind: Literal["acknowledged"] = "acknowledged"


class ResponseBreachedFact(ScoringFact):
    """The first-response clock's breach fired, answered or not."""

    kind: Literal["response_breached"] = "response_breached"


class ResolutionStoppedFact(ScoringFact):
    kind: Literal["resolution_stopped"] = "resolution_stopped"
    breached: bool


class ResolutionBreachedFact(ScoringFact):
    kind: Literal["resolution_breached"] = "resolution_breached"


class IncidentLinkFact(ScoringFact):
    """Linked to a mass incident (its id), or unlinked (None): the policy says whether such children count."""

    kind: Literal["incident_link"] = "incident_link"
    incident_id: str | None


class ReclassifiedFact(ScoringFact):
    """The complaint's category, priority and channel corrected: it counts as if received so."""

    kind: Literal["reclassified"] = "reclassified"
    priority: str
    channel: str
    category: str


class ComplaintClosedFact(ScoringFact):
    kind: Literal["closed"] = "closed"


class ComplaintReopenedFact(ScoringFact):
    kind: Literal["reopened"] = "reopened"


class FeedbackFact(ScoringFact):
    kind: Literal["feedback"] = "feedback"
    satisfaction: Literal["satisfied", "basically_satisfied", "unsatisfied"]
    # Facts from before sources were recorded: staff of a unit unknown, which the default policy counts.
    source: SatisfactionSource = "other_unit"


class CheckedFact(ScoringFact):
    kind: Literal["checked"] = "checked"
    substantiated: bool
    # None: a review's ruling, which keeps the check's class and unit (or a check from before they were kept).
    root_cause_class: RootCauseClass | None = None
    responsible_unit: str | None = None


class InspectedFact(ScoringFact):
    kind: Literal["inspected"] = "inspected"
    bonus: float  # the highlights' points, before the policy's cap
    innovation_rating: float | None = None  # 0-1; None: not assessed
    # For the monthly report; None and 0 in facts recorded before it counted them.
    inspection_type: str | None = None
    highlights: int = 0


class FindingOpenedFact(ScoringFact):
    """An inspection finding's rectification order, costing its checklist points."""

    kind: Literal["finding_opened"] = "finding_opened"
    points: int
    item_id: str | None = None  # the checklist item; None in facts recorded before the report counted them


class OrderOverdueFact(ScoringFact):
    """The rectification order's breach fired."""

    kind: Literal["order_overdue"] = "order_overdue"


class RectificationStoppedFact(ScoringFact):
    kind: Literal["rectification_stopped"] = "rectification_stopped"
    breached: bool


class OrderRejectedFact(ScoringFact):
    """The inspector rejected the hall's rectification report: counted in the monthly report, not scored."""

    kind: Literal["order_rejected"] = "order_rejected"


class DeductionWaivedFact(ScoringFact):
    """The unit above upheld the hall's appeal (申诉) against the finding of this rectification order."""

    kind: Literal["deduction_waived"] = "deduction_waived"
    decided_by: str  # the deciding unit


AnyScoringFact = Annotated[
    ComplaintRegisteredFact
    | FirstResponseStoppedFact
    | AcknowledgedFact
    | ResponseBreachedFact
    | ResolutionStoppedFact
    | ResolutionBreachedFact
    | ReclassifiedFact
    | IncidentLinkFact
    | ComplaintClosedFact
    | ComplaintReopenedFact
    | FeedbackFact
    | CheckedFact
    | InspectedFact
    | FindingOpenedFact
    | OrderOverdueFact
    | RectificationStoppedFact
    | OrderRejectedFact
    | DeductionWaivedFact,
    Field(discriminator="kind"),
]
SCORING_FACT: TypeAdapter[AnyScoringFact] = TypeAdapter(AnyScoringFact)  # reads a stored or published fact


class ScoreRecalculation(Contract):
    """One fact applied to a hall's scorecard for a period, and what it did to the score."""

    hall_id: str
    period: str
    subject_id: uuid.UUID  # the complaint or rectification order the fact is about
    source_event_id: uuid.UUID
    source_event_type: str
    policy_version: str
    score_before: float
    score: float
    components: dict[str, float]
    deductions: float
    changes: list[ScoreChange]
    at: AwareDatetime  # when the source event happened: as-of queries use it


class ScoreRecalculatedV1(ScoreRecalculation):
    event_type = "ScoreRecalculated"
    schema_version = 1
    # Untyped, as scoring applied it. Floats came with V2's facts; widening the type here lets one
    # decoder read both versions. SCORING_FACT reads it.
    fact: dict[str, str | bool | int | float]


class ScoreRecalculatedV2(ScoreRecalculatedV1):
    """Adds the bonus points (加分, after the policy's cap)."""

    schema_version = 2
    bonus: float


class ScoreRecalculatedV3(ScoreRecalculation):
    """The fact is typed: one of the scoring facts above, by its `kind` (the same JSON as V2's)."""

    event_type = "ScoreRecalculated"
    schema_version = 3
    fact: AnyScoringFact
    bonus: float


class MonthlyReportPublishedV1(Contract):
    """A monthly report (月度通报) was published: which edition, and the digest of its snapshot, which the
    scoring service keeps (`GET /api/v1/reports/monthly/published`). Figures only, no personal data."""

    event_type = "MonthlyReportPublished"
    schema_version = 1
    period: str
    scope: str
    edition: int = Field(ge=1)
    halls: int
    digest: str  # SHA-256 of the snapshot's JSON, keys sorted
    published_by: str
    at: AwareDatetime


SCORE_RECALCULATIONS: tuple[type[ScoreRecalculation], ...] = (
    ScoreRecalculatedV1,
    ScoreRecalculatedV2,
    ScoreRecalculatedV3,
)


PUBLISHED: tuple[type[Contract], ...] = (
    HallRegisteredV1,
    HallChangedV1,
    ComplaintRegisteredV1,
    ComplaintRegisteredV2,
    ComplaintRegisteredV3,
    *COMPLAINT_STEPS,
    *COMPLAINT_STEP_VERSIONS,
    *CUSTOMER_NOTIFICATIONS,
    IncidentOpenedV1,
    InspectionRecordedV1,
    InspectionRecordedV2,
    RectificationOrderOpenedV1,
    RectificationOrderOpenedV2,
    RectificationOrderOpenedV3,
    *ORDER_STEPS,
    *ORDER_STEP_VERSIONS,
    *SLA_EVENTS,
    SlaEscalatedV2,
    SlaScheduledV1,
    SlaClockStoppedV1,
    *SCORE_RECALCULATIONS,
    MonthlyReportPublishedV1,
)
CONTRACTS: dict[tuple[str, int], type[Contract]] = {(c.event_type, c.schema_version): c for c in PUBLISHED}


class EnvelopeHeader(BaseModel):
    """What every message carries besides its data."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    event_id: uuid.UUID
    event_type: str
    schema_version: int = Field(ge=1)
    source: str
    aggregate_id: uuid.UUID
    aggregate_version: int = Field(ge=1)
    occurred_at: AwareDatetime


class Envelope(EnvelopeHeader):
    """Any message, its data not yet checked against a contract."""

    data: dict[str, Any]


class ContractEnvelope(EnvelopeHeader):
    """A message whose data is a known contract: one subclass per contract, built below."""

    data: Contract


def _envelope_of(contract: type[Contract]) -> type[ContractEnvelope]:
    fields: dict[str, Any] = {
        "event_type": (Literal[contract.event_type], ...),
        "schema_version": (Literal[contract.schema_version], ...),
        "data": (contract, ...),
    }
    return create_model(f"{contract.__name__}Envelope", __base__=ContractEnvelope, **fields)


ENVELOPES: dict[tuple[str, int], type[ContractEnvelope]] = {key: _envelope_of(c) for key, c in CONTRACTS.items()}


@functools.cache
def _any_known_event() -> TypeAdapter[ContractEnvelope]:
    """Picks the envelope by event type, then by schema version, as one validator: one pass over the bytes.

    Built when first needed, not on import: it is a good part of a service's start-up.
    """
    by_type: dict[str, list[type[ContractEnvelope]]] = {}
    for (event_type, _), envelope in ENVELOPES.items():
        by_type.setdefault(event_type, []).append(envelope)
    by_version: list[Any] = [
        versions[0] if len(versions) == 1 else Annotated[Union[tuple(versions)], Field(discriminator="schema_version")]  # noqa: UP007
        for versions in by_type.values()
    ]
    union: Any = Annotated[Union[tuple(by_version)], Field(discriminator="event_type")]  # noqa: UP007
    return TypeAdapter(union)


class IntegrationEvent(NamedTuple):  # a tuple: made for every message a consumer reads
    envelope: Envelope | ContractEnvelope
    payload: Contract

    @property
    def event_type(self) -> str:
        return self.envelope.event_type


def event_id_for(aggregate_id: uuid.UUID, aggregate_version: int) -> uuid.UUID:
    """Stable across republishing, so consumers can recognise duplicates."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{aggregate_id}:{aggregate_version}")


def build_event(
    payload: Contract,
    *,
    source: str,
    aggregate_id: uuid.UUID,
    aggregate_version: int,
    occurred_at: datetime,
) -> IntegrationEvent:
    envelope = ENVELOPES[(payload.event_type, payload.schema_version)](
        event_id=event_id_for(aggregate_id, aggregate_version),
        event_type=payload.event_type,
        schema_version=payload.schema_version,
        source=source,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
        occurred_at=occurred_at,
        data=payload,
    )
    return IntegrationEvent(envelope, payload)


def encode_event(event: IntegrationEvent) -> bytes:
    return event.envelope.model_dump_json().encode()


def decode_event(raw: bytes | None) -> IntegrationEvent:
    if not raw:
        raise InvalidEvent("empty message")
    try:
        envelope = _any_known_event().validate_json(raw)  # parsing and checking in one pass: rebuilds read millions
    except ValidationError:
        return _decode_in_two_steps(raw)  # slower, but it names what is wrong
    return IntegrationEvent(envelope, envelope.data)


def _decode_in_two_steps(raw: bytes) -> IntegrationEvent:
    """The envelope, then the data against its contract: so an error says which of the two is wrong."""
    try:
        envelope = Envelope.model_validate_json(raw)
    except ValidationError as error:
        if error.errors()[0]["type"] == "json_invalid":
            raise InvalidEvent(f"not JSON: {error.errors()[0]['msg']}") from None
        raise InvalidEvent(f"bad envelope: {describe_validation_error(error)}") from None
    contract = CONTRACTS.get((envelope.event_type, envelope.schema_version))
    if contract is None:
        raise InvalidEvent(f"unknown event type {envelope.event_type!r} version {envelope.schema_version}")
    try:
        payload = contract.model_validate(envelope.data)
    except ValidationError as error:
        raise InvalidEvent(
            f"bad {envelope.event_type} v{envelope.schema_version} data: {describe_validation_error(error)}"
        ) from None
    return IntegrationEvent(envelope, payload)


def describe_validation_error(error: ValidationError) -> str:
    """`field.path: problem; ...`, for messages that name the bad entry."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '(root)'}: {item['msg']}" for item in error.errors()
    )
