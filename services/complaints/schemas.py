"""Request and response bodies of the complaints API."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from services.complaints.attachments import SHA256_PATTERN, AttachmentRef
from services.complaints.domain import Complaint, Hall
from services.complaints.inspections import Inspection, RectificationOrder
from services.complaints.numbers import NUMBER_PATTERN
from services.complaints.personal_data import ERASED, CustomerData, mask_identifiers
from shared.catalog import Category, Channel, PauseReason, Priority
from shared.contracts import PAUSE_REASON_BEFORE_CODES, RootCauseClass
from shared.organisation import unit_name
from shared.validation import RequestModel

# Text people type, once stored and published: mobile and resident ID numbers in it masked (`mask_identifiers`).
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(mask_identifiers)
]
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), AfterValidator(mask_identifiers)
]
Report = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), AfterValidator(mask_identifiers)
]
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
# A segment of an organisation unit's path (group/广东/深圳): no "/" inside.
# Stored NFKC-normalised; invisible and control characters are refused (`shared.organisation.unit_name`).
UnitName = Annotated[str, StringConstraints(max_length=100), AfterValidator(unit_name)]
# A hall code, or an organisation unit path (`group`, `group/广东`, `group/广东/深圳`, `group/广东/深圳/GD-SZ-001`).
UnitRef = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^([A-Za-z0-9_.-]{1,64}|group(/[^/\x00-\x1f]{1,100}){0,3})$")
]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9]{5,20}$")]
AttachmentIds = list[Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]]


class HallCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "hall_id": "GD-SZ-001",
                    "name": "福田营业厅",
                    "province": "广东",
                    "city": "深圳",
                    "level": 1,
                    "ownership": "self_operated",
                }
            ]
        }
    )

    hall_id: Code = Field(description="The operator's own code for the hall.")
    name: Text
    province: UnitName
    city: UnitName
    level: int = Field(ge=1, le=4)
    ownership: Literal["self_operated", "partner"]


class HallChangePublic(BaseModel):
    effective_from: datetime
    name: str | None
    level: int | None
    ownership: str | None
    closed: bool | None


class HallPublic(BaseModel):
    hall_id: str
    name: str
    province: str
    city: str
    level: int
    ownership: str
    closed: bool
    closed_from: datetime | None = Field(description="When the closure in force took effect, if closed.")
    changes: list[HallChangePublic] = Field(description="Every change, in the order recorded.")

    @classmethod
    def of(cls, hall: Hall, as_at: datetime) -> HallPublic:
        """Its name, level, ownership and closure as at `as_at`."""
        attributes = hall.attributes_at(as_at)
        return cls(
            hall_id=hall.hall_code,
            name=attributes.name,
            province=hall.province,
            city=hall.city,
            level=attributes.level,
            ownership=attributes.ownership,
            closed=attributes.closed,
            closed_from=hall.closed_from(as_at),
            changes=[HallChangePublic(**asdict(change)) for change in hall.changes],
        )


WeChatOpenId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$")]


class CustomerContact(RequestModel):
    """How to reach the customer. Each address given is a channel their notifications go by, as the
    notification policy says (the phone: SMS)."""

    name: Text
    phone: Phone
    email: EmailStr | None = Field(default=None, max_length=254)
    wechat_openid: WeChatOpenId | None = Field(
        default=None, description="The customer's openid with the operator's WeChat service account."
    )


class ComplaintCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "hall_id": "GD-SZ-001",
                    "channel": "hotline_10000",
                    "category": "billing",
                    "priority": "urgent",
                    "customer": {"name": "张三", "phone": "13812345678"},
                    "description": "Charged twice for one plan",
                    "received_at": "2026-09-30T10:00:00+08:00",
                }
            ]
        }
    )

    hall_id: Code
    channel: Channel
    category: Category
    priority: Priority = "normal"
    customer: CustomerContact
    # Masked by the use case, which keeps the original sealed with the customer's data.
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
    received_by: Code | None = Field(
        default=None, description="Staff member or unit that received it (first-ask owner); defaults to the hall."
    )
    received_at: AwareDatetime | None = Field(
        default=None, description="When the front line received it; not in the future, at most 30 days old."
    )


class Contact(BaseModel):
    """Masked unless the caller's role needs to reach the customer."""

    name: str
    phone: str
    email: str | None = None


class SurveyLink(BaseModel):
    """For the calling system to send the customer: `POST {path}` with the answer, once, before `expires_at`."""

    path: str
    token: str
    expires_at: datetime


class SurveyAnswer(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"satisfaction": "satisfied"}]})

    satisfaction: Literal["satisfied", "basically_satisfied", "unsatisfied"]


class SurveyRecorded(BaseModel):
    number: str
    satisfaction: str


class AttachmentPublic(BaseModel):
    id: str = Field(description="The SHA-256 of the file's bytes, in hex.")
    size: int
    content_type: str = Field(description="As its bytes say, not as the uploader declared.")
    name: str

    @classmethod
    def of(cls, ref: AttachmentRef) -> AttachmentPublic:
        return cls(id=ref.sha256, size=ref.size, content_type=ref.content_type, name=ref.name)


def attachments_public(files: list[dict[str, Any]]) -> list[AttachmentPublic]:
    """As the events say of each file (`AttachmentRef.as_event_field`)."""
    return [AttachmentPublic.of(AttachmentRef(**file)) for file in files]


class ComplaintPublic(BaseModel):
    id: uuid.UUID
    number: str
    hall_id: str
    channel: str
    category: str
    priority: str
    status: str
    owner: str = Field(description="Who owns it: the first-ask staff member or system, then the unit that accepted it.")
    owner_unit: str = Field(description="The organisation unit that owns it and takes its steps.")
    pending_hand_off_to: str | None = Field(description="The unit a hand-off waits for, until it accepts.")
    acknowledged_at: datetime | None
    resolved_on_spot: bool
    checked: bool
    substantiated: bool | None
    contacts: int
    rectified: bool
    attachments: list[AttachmentPublic] = Field(
        description="The evidence its rectifications referred to; none once its customer's data is erased."
    )
    satisfaction: str | None
    callback_needed: bool
    paused: bool
    pause_reason: str | None = Field(description="The catalogue's code of the pause under way.")
    escalation_level: int
    reopen_count: int
    repeat_count: int = Field(
        description="The customer's earlier complaints within the repeat window (重复投诉), by their phone,"
        " counted at registration."
    )
    repeat_of: list[str] = Field(
        description="The numbers of those earlier complaints that you may see; all of them in `GET"
        " /complaints/{id}/related`."
    )
    customer: Contact
    customer_erased: bool = Field(description="The customer's personal data was erased: name and phone read erased.")
    description: str
    received_at: datetime
    registered_at: datetime
    version: int
    survey: SurveyLink | None = Field(
        default=None, description="Only in the answer to the step that records a result (rectify, resolve-on-spot)."
    )

    @classmethod
    def of(
        cls,
        complaint: Complaint,
        customer: CustomerData | None,
        *,
        owner_unit: str,
        repeat_of: list[str],
        unmasked: bool = False,
    ) -> ComplaintPublic:
        """`customer`: None once erased; then name and phone read "erased"."""
        return cls(
            id=complaint.id,
            number=complaint.number,
            hall_id=complaint.hall_code,
            channel=complaint.channel,
            category=complaint.category,
            priority=complaint.priority,
            status=complaint.status,
            owner=complaint.owner,
            owner_unit=owner_unit,
            pending_hand_off_to=complaint.pending_hand_off_to,
            acknowledged_at=complaint.acknowledged_at,
            resolved_on_spot=complaint.resolved_on_spot,
            checked=complaint.checked,
            substantiated=complaint.substantiated,
            contacts=complaint.contacts,
            rectified=complaint.rectified,
            attachments=attachments_public(complaint.attachments),
            satisfaction=complaint.satisfaction,
            callback_needed=complaint.callback_needed,
            paused=complaint.paused_since is not None,
            pause_reason=complaint.pause_reason,
            escalation_level=complaint.escalation_level,
            reopen_count=complaint.reopen_count,
            repeat_count=complaint.repeat_count,
            repeat_of=repeat_of,
            customer=Contact(name=ERASED, phone=ERASED)
            if customer is None
            else Contact(name=customer.name, phone=customer.phone, email=customer.email)
            if unmasked
            else Contact(
                name=mask_name(customer.name),
                phone=mask_phone(customer.phone),
                email=None if customer.email is None else mask_email(customer.email),
            ),
            customer_erased=customer is None,
            description=complaint.description,
            received_at=complaint.received_at,
            registered_at=complaint.registered_at,
            version=complaint.version,
        )


class RelatedComplaint(BaseModel):
    id: uuid.UUID
    number: str
    hall_id: str
    status: str
    received_at: datetime


class RelatedComplaints(BaseModel):
    """The same customer's other complaints, found by a keyed digest of their phone, oldest first."""

    items: list[RelatedComplaint]


def mask_phone(phone: str) -> str:
    """13812345678 → 138********: the carrier's prefix and the length, for staff to confirm the number the
    customer reads out; never the last four digits, which verify the customer's own progress query."""
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 3)


def mask_email(email: str) -> str:
    """zhang.san@example.cn → z*********@example.cn."""
    local, _, domain = email.rpartition("@")
    return f"{mask_name(local)}@{domain}"


def mask_name(name: str) -> str:
    """张三丰 → 张**."""
    return name[:1] + "*" * (len(name) - 1)


Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), AfterValidator(mask_identifiers)
]


class StepBody(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "Called the customer back within the hour"}]})

    reason: Reason = Field(description="Why this step was taken; recorded in the complaint's history.")


class HallChangeBody(StepBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"reason": "Upgraded after the refit", "effective_from": "2026-12-16T00:00:00+08:00", "level": 2}
            ]
        }
    )

    effective_from: AwareDatetime = Field(description="From when the change holds; before or after now.")
    name: Text | None = None
    level: int | None = Field(default=None, ge=1, le=4)
    ownership: Literal["self_operated", "partner"] | None = None
    closed: bool | None = Field(default=None, description="true closes the hall, false opens it again.")

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.name is None and self.level is None and self.ownership is None and self.closed is None:
            raise ValueError("give at least one of name, level, ownership or closed")
        return self


class DispatchBody(StepBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"reason": "Network fault: the city's service centre handles it", "to_unit": "group/广东/深圳"}
            ]
        }
    )

    to_unit: UnitRef = Field(
        description="The unit to take the complaint over: a registered hall's code, or a unit path such as"
        " `group/广东/深圳` (a hall, or a unit above the complaint's hall)."
    )


class CheckBody(StepBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "reason": "Billing records checked",
                    "substantiated": True,
                    "root_cause": "Duplicate billing run",
                    "root_cause_class": "billing_system",
                    "responsible_unit": "group/广东/深圳",
                }
            ]
        }
    )

    substantiated: bool
    root_cause: Text
    root_cause_class: RootCauseClass = Field(
        description="What kind of cause the check found; the scoring policy's `attribution` says who bears its"
        " points (by default the hall for hall_service, hall_environment and customer_side)."
    )
    responsible_unit: UnitRef = Field(
        description="A registered hall (code or path), or a unit above the complaint's hall such as `group/广东/深圳`."
    )


class ReviewCheckBody(StepBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"reason": "The recording shows the counter refused the refund", "substantiated": True}]
        }
    )

    substantiated: bool


class ContactBody(StepBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "Explained the refund", "outcome": "reached"}]}
    )

    outcome: Literal["reached", "unreachable", "refused", "call_back_later"]


class RectifyBody(StepBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "reason": "Refund approved",
                    "action": "Refund the duplicate charge",
                    "owner": "SZ-BILLING",
                    "deadline": "2026-10-13T10:00:00+08:00",
                    "evidence": ["ticket://BILL-881"],
                }
            ]
        }
    )

    action: LongText
    owner: Code = Field(description="Who carries the rectification out.")
    deadline: AwareDatetime
    evidence: list[Text] = Field(default_factory=list, max_length=20, description="References to evidence.")
    attachments: AttachmentIds = Field(
        default_factory=list, max_length=20, description="Uploaded evidence (`POST /api/v1/attachments`), by id."
    )


class FeedbackBody(StepBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "Return call after the refund", "satisfaction": "satisfied"}]}
    )

    satisfaction: Literal["satisfied", "basically_satisfied", "unsatisfied"]


class CallbackBody(StepBody):
    outcome: Text


class PauseBody(StepBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"reason": "Base station repair under way in the area", "reason_code": "awaiting_network_fix"}]
        }
    )

    reason_code: PauseReason = Field(
        default=PAUSE_REASON_BEFORE_CODES,
        description="What it waits for, from the catalogue; the SLA policy says which clocks that stops and for"
        " how long before a supervisor must approve (`approve-pause`).",
    )


class ReclassifyBody(StepBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"reason": "Outage affects the customer's business line", "priority": "urgent"}]
        }
    )

    category: Category | None = None
    priority: Priority | None = Field(
        default=None, description="A lower priority than now needs a quality manager of a unit above the hall."
    )
    channel: Channel | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.category is None and self.priority is None and self.channel is None:
            raise ValueError("give at least one of category, priority or channel")
        return self


class EscalateBody(StepBody):
    target_unit: UnitRef = Field(
        description="The complaint's hall (its manager: level 1) or a unit above it: its city (2), province (3)"
        " or the group (4), as a path such as `group/广东/深圳`, or the hall's code."
    )


class ProgressQuery(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"number": "C20261201-002669-7KQ3M", "phone_last_four": "5678"}]}
    )

    number: str = Field(
        pattern=NUMBER_PATTERN, max_length=40, description="The complaint number given at registration."
    )
    phone_last_four: str = Field(
        pattern=r"^[0-9]{4}$", description="The last four digits of the phone number given with the complaint."
    )


class ErasureRequest(RequestModel):
    """Whose personal data to erase: complaints by number, or every complaint of a customer by phone (or by
    the phone's keyed digest, hex). At least one of the three."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "PIPL art. 47 request, ticket 88", "phones": ["13812345678"]}]}
    )

    reason: Reason
    complaint_numbers: list[Annotated[str, StringConstraints(pattern=NUMBER_PATTERN, max_length=40)]] = Field(
        default_factory=list, max_length=100
    )
    phones: list[Phone] = Field(default_factory=list, max_length=20)
    phone_digests: list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]] = Field(
        default_factory=list, max_length=20
    )

    @model_validator(mode="after")
    def _someone(self) -> Self:
        if not (self.complaint_numbers or self.phones or self.phone_digests):
            raise ValueError("name complaint_numbers, phones or phone_digests")
        return self


class Erasure(BaseModel):
    erased: list[str] = Field(description="Numbers of the complaints whose customer data was erased now.")
    already_erased: list[str]


class PublicStep(BaseModel):
    step: str
    at: datetime


class PublicProgress(BaseModel):
    """What a customer may see of their complaint: no names, phones, descriptions or staff notes."""

    number: str
    status: str
    received_at: datetime
    steps: list[PublicStep]


class FindingCreate(RequestModel):
    item_id: Code = Field(description="The checklist item the finding is about.")
    description: LongText
    deadline: AwareDatetime | None = Field(default=None, description="Rectify by; default 3 days from now.")
    attachments: AttachmentIds = Field(
        default_factory=list,
        max_length=20,
        description="Uploaded evidence (`POST /api/v1/attachments`), by id: the hall may read it with the order.",
    )


class HighlightCreate(RequestModel):
    description: LongText
    points: float = Field(gt=0, le=5, description="Bonus points (加分) awarded; a period's total is capped.")


class InspectionCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "hall_id": "GD-SZ-001",
                    "type": "mystery_shopper",
                    "failed_items": ["A1", "E1"],
                    "findings": [
                        {"item_id": "A1", "description": "No greeting at the door"},
                        {"item_id": "E1", "description": "Spill left for 20 minutes"},
                    ],
                    "innovation_rating": 0.8,
                    "highlights": [{"description": "Sign-language service at counter 3", "points": 2}],
                }
            ]
        }
    )

    hall_id: Code
    type: Literal["mystery_shopper", "third_party", "cross_inspection", "self_check"]
    checklist_version: str | None = Field(default=None, description="Default: the newest checklist.")
    failed_items: list[Code] = Field(
        default_factory=list, max_length=100, description="Checklist items the hall failed."
    )
    findings: list[FindingCreate] = Field(default_factory=list, max_length=100)
    innovation_rating: float | None = Field(
        default=None, ge=0, le=1, description="Service innovation, 0 (none) to 1 (outstanding); omit if not assessed."
    )
    highlights: list[HighlightCreate] = Field(default_factory=list, max_length=20)


class HighlightPublic(BaseModel):
    description: str
    points: float


class InspectionPublic(BaseModel):
    id: uuid.UUID
    hall_id: str
    type: str
    inspector: str
    checklist_version: str
    score: int
    max_score: int
    failed_items: list[str]
    rectification_orders: list[uuid.UUID]
    innovation_rating: float | None
    highlights: list[HighlightPublic]
    at: datetime

    @classmethod
    def of(cls, inspection: Inspection) -> InspectionPublic:
        return cls(
            id=inspection.id,
            hall_id=inspection.hall_code,
            type=inspection.inspection_type,
            inspector=inspection.inspector,
            checklist_version=inspection.checklist_version,
            score=inspection.score,
            max_score=inspection.max_score,
            failed_items=[result["item_id"] for result in inspection.results if not result["passed"]],
            rectification_orders=[finding["order_id"] for finding in inspection.findings],
            innovation_rating=inspection.innovation_rating,
            highlights=[HighlightPublic(**highlight) for highlight in inspection.highlights],
            at=inspection.at,
        )


class AttachmentVerification(BaseModel):
    id: str
    intact: bool = Field(description="Whether the stored bytes still have the digest that is their id.")
    sha256_now: str | None = Field(description="The stored bytes' digest now; null if none are stored.")
    size_now: int | None


class OrderPublic(BaseModel):
    id: uuid.UUID
    inspection_id: uuid.UUID
    hall_id: str
    item_id: str
    points: int
    description: str
    deadline: datetime
    status: str
    rejections: int
    appeal: Literal["pending", "upheld", "dismissed"] | None
    attachments: list[AttachmentPublic] = Field(
        description="The evidence its finding and its rectification reports referred to."
    )
    version: int

    @classmethod
    def of(cls, order: RectificationOrder) -> OrderPublic:
        return cls(
            id=order.id,
            inspection_id=order.inspection_id,
            hall_id=order.hall_code,
            item_id=order.item_id,
            points=order.points,
            description=order.description,
            deadline=order.deadline,
            status=order.status,
            rejections=order.rejections,
            appeal=order.appeal,
            attachments=attachments_public(order.attachments),
            version=order.version,
        )


class AppealDecisionBody(StepBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "The greeting was recorded on the door camera", "upheld": True}]}
    )

    upheld: bool = Field(description="Upheld: the finding costs the hall nothing; dismissed: it stands.")


class OrderRectifyBody(StepBody):
    report: Report
    evidence: list[Text] = Field(default_factory=list, max_length=20)
    attachments: AttachmentIds = Field(
        default_factory=list, max_length=20, description="Uploaded evidence (`POST /api/v1/attachments`), by id."
    )
