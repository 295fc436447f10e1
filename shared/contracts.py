"""Versioned integration-event contracts: what crosses a service boundary.

Internal domain events may change freely; these change only by adding a new
`schema_version`. A message that is not a known, well-formed contract is refused
with `InvalidEvent` whose message names the problem.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c1e-2b7a-4f0e-9a51-8f0c1d2e3a4b")


class InvalidEvent(ValueError):
    """The message is not a valid integration event; the text says why."""


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
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


class ComplaintStep(Contract):
    """A step of a complaint's closed loop: who did it, when and why."""

    actor: str
    reason: str
    at: AwareDatetime


class ComplaintResolvedOnSpotV1(ComplaintStep):
    event_type = "ComplaintResolvedOnSpot"
    schema_version = 1


class ComplaintDispatchedV1(ComplaintStep):
    event_type = "ComplaintDispatched"
    schema_version = 1
    to_unit: str


class ComplaintHandOffAcceptedV1(ComplaintStep):
    event_type = "ComplaintHandOffAccepted"
    schema_version = 1
    unit: str


class ComplaintAcknowledgedV1(ComplaintStep):
    event_type = "ComplaintAcknowledged"
    schema_version = 1


class ComplaintCheckedV1(ComplaintStep):
    event_type = "ComplaintChecked"
    schema_version = 1
    substantiated: bool
    root_cause: str
    responsible_unit: str


class CustomerContactedV1(ComplaintStep):
    event_type = "CustomerContacted"
    schema_version = 1
    outcome: str


class ComplaintRectifiedV1(ComplaintStep):
    event_type = "ComplaintRectified"
    schema_version = 1
    action: str
    rectification_owner: str
    deadline: AwareDatetime
    evidence: list[str]


class FeedbackReceivedV1(ComplaintStep):
    event_type = "FeedbackReceived"
    schema_version = 1
    satisfaction: Literal["satisfied", "basically_satisfied", "unsatisfied"]
    score: int = Field(ge=1, le=5)


class ComplaintClosedV1(ComplaintStep):
    event_type = "ComplaintClosed"
    schema_version = 1


class ComplaintReopenedV1(ComplaintStep):
    event_type = "ComplaintReopened"
    schema_version = 1


class CallbackMadeV1(ComplaintStep):
    event_type = "CallbackMade"
    schema_version = 1
    outcome: str


class ComplaintPausedV1(ComplaintStep):
    event_type = "ComplaintPaused"
    schema_version = 1


class ComplaintResumedV1(ComplaintStep):
    event_type = "ComplaintResumed"
    schema_version = 1


class ComplaintEscalatedV1(ComplaintStep):
    event_type = "ComplaintEscalated"
    schema_version = 1
    level: int = Field(ge=1)
    target_unit: str


COMPLAINT_STEPS: tuple[type[ComplaintStep], ...] = (
    ComplaintResolvedOnSpotV1,
    ComplaintDispatchedV1,
    ComplaintHandOffAcceptedV1,
    ComplaintAcknowledgedV1,
    ComplaintCheckedV1,
    CustomerContactedV1,
    ComplaintRectifiedV1,
    FeedbackReceivedV1,
    ComplaintClosedV1,
    ComplaintReopenedV1,
    CallbackMadeV1,
    ComplaintPausedV1,
    ComplaintResumedV1,
    ComplaintEscalatedV1,
)

PUBLISHED: tuple[type[Contract], ...] = (HallRegisteredV1, ComplaintRegisteredV1, *COMPLAINT_STEPS)
CONTRACTS: dict[tuple[str, int], type[Contract]] = {(c.event_type, c.schema_version): c for c in PUBLISHED}


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID
    event_type: str
    schema_version: int = Field(ge=1)
    source: str
    aggregate_id: uuid.UUID
    aggregate_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    data: dict[str, Any]


@dataclass(frozen=True)
class IntegrationEvent:
    envelope: Envelope
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
    envelope = Envelope(
        event_id=event_id_for(aggregate_id, aggregate_version),
        event_type=payload.event_type,
        schema_version=payload.schema_version,
        source=source,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
        occurred_at=occurred_at,
        data=payload.model_dump(mode="json"),
    )
    return IntegrationEvent(envelope, payload)


def encode_event(event: IntegrationEvent) -> bytes:
    return event.envelope.model_dump_json().encode()


def decode_event(raw: bytes | None) -> IntegrationEvent:
    if not raw:
        raise InvalidEvent("empty message")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(f"not JSON: {error}") from None
    try:
        envelope = Envelope.model_validate(document)
    except ValidationError as error:
        raise InvalidEvent(f"bad envelope: {_describe(error)}") from None
    contract = CONTRACTS.get((envelope.event_type, envelope.schema_version))
    if contract is None:
        raise InvalidEvent(f"unknown event type {envelope.event_type!r} version {envelope.schema_version}")
    try:
        payload = contract.model_validate(envelope.data)
    except ValidationError as error:
        raise InvalidEvent(f"bad {envelope.event_type} v{envelope.schema_version} data: {_describe(error)}") from None
    return IntegrationEvent(envelope, payload)


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '(root)'}: {item['msg']}" for item in error.errors()
    )
