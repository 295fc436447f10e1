"""Request and response bodies of the complaints API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from services.complaints.catalog import Category, Channel, Ownership, Priority
from services.complaints.domain import Complaint, Hall

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9]{5,20}$")]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HallCreate(StrictBody):
    hall_id: Code = Field(description="The operator's own code for the hall.")
    name: Text
    province: Text
    city: Text
    level: int = Field(ge=1, le=4)
    ownership: Ownership


class HallPublic(BaseModel):
    hall_id: str
    name: str
    province: str
    city: str
    level: int
    ownership: str

    @classmethod
    def of(cls, hall: Hall) -> HallPublic:
        return cls(
            hall_id=hall.hall_code,
            name=hall.name,
            province=hall.province,
            city=hall.city,
            level=hall.level,
            ownership=hall.ownership,
        )


class CustomerContact(StrictBody):
    name: Text
    phone: Phone


class ComplaintCreate(StrictBody):
    hall_id: Code
    channel: Channel
    category: Category
    priority: Priority = "normal"
    customer: CustomerContact
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
    received_by: Code | None = Field(
        default=None, description="Staff member or unit that received it (first-ask owner); defaults to the hall."
    )
    received_at: AwareDatetime | None = Field(
        default=None, description="When the front line received it; not in the future, at most 30 days old."
    )


class MaskedContact(BaseModel):
    name: str
    phone: str


class ComplaintPublic(BaseModel):
    id: uuid.UUID
    number: str
    hall_id: str
    channel: str
    category: str
    priority: str
    status: str
    owner: str
    customer: MaskedContact
    description: str
    received_at: datetime
    registered_at: datetime
    version: int

    @classmethod
    def of(cls, complaint: Complaint) -> ComplaintPublic:
        return cls(
            id=complaint.id,
            number=complaint.number,
            hall_id=complaint.hall_code,
            channel=complaint.channel,
            category=complaint.category,
            priority=complaint.priority,
            status=complaint.status,
            owner=complaint.owner,
            customer=MaskedContact(name=mask_name(complaint.customer_name), phone=mask_phone(complaint.customer_phone)),
            description=complaint.description,
            received_at=complaint.received_at,
            registered_at=complaint.registered_at,
            version=complaint.version,
        )


def mask_phone(phone: str) -> str:
    """13812345678 → 138****5678."""
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_name(name: str) -> str:
    """张三丰 → 张**."""
    return name[:1] + "*" * (len(name) - 1)
