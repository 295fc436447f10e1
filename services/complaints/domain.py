"""Halls and complaints as event-sourced aggregates. Imports no framework but eventsourcing."""

from __future__ import annotations

import uuid
from datetime import datetime

from eventsourcing.domain import Aggregate, event

HALL_ID_NAMESPACE = uuid.UUID("0b8a4f8e-6a53-4b43-9d0c-1f7e0d7c2a11")


def hall_aggregate_id(hall_code: str) -> uuid.UUID:
    """Halls are addressed by the operator's own hall code; one aggregate per code."""
    return uuid.uuid5(HALL_ID_NAMESPACE, hall_code)


class Hall(Aggregate):
    class Registered(Aggregate.Created):
        hall_code: str
        name: str
        province: str
        city: str
        level: int
        ownership: str

    @staticmethod
    def create_id(hall_code: str, **_: object) -> uuid.UUID:
        return hall_aggregate_id(hall_code)

    @event(Registered)
    def __init__(self, hall_code: str, name: str, province: str, city: str, level: int, ownership: str) -> None:
        self.hall_code = hall_code
        self.name = name
        self.province = province
        self.city = city
        self.level = level
        self.ownership = ownership


class Complaint(Aggregate):
    """A customer complaint. Its first-ask owner is whoever received it (首问负责)."""

    class Registered(Aggregate.Created):
        number: str
        hall_code: str
        channel: str
        category: str
        priority: str
        customer_name: str
        customer_phone: str
        description: str
        received_by: str
        received_at: datetime
        registered_at: datetime
        request_fingerprint: str

    @event(Registered)
    def __init__(
        self,
        id: uuid.UUID,  # noqa: A002 - eventsourcing takes the aggregate id from this name
        number: str,
        hall_code: str,
        channel: str,
        category: str,
        priority: str,
        customer_name: str,
        customer_phone: str,
        description: str,
        received_by: str,
        received_at: datetime,
        registered_at: datetime,
        request_fingerprint: str,
    ) -> None:
        self.number = number
        self.hall_code = hall_code
        self.channel = channel
        self.category = category
        self.priority = priority
        self.customer_name = customer_name
        self.customer_phone = customer_phone
        self.description = description
        self.owner = received_by
        self.received_at = received_at
        self.registered_at = registered_at
        self.request_fingerprint = request_fingerprint
        self.status = "registered"
