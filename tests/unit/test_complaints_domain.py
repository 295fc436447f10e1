from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.complaints.application import RegisterComplaint
from services.complaints.domain import Complaint, Hall, hall_aggregate_id
from services.complaints.schemas import mask_name, mask_phone


def register(received_by: str = "clerk-17") -> Complaint:
    now = datetime(2026, 9, 30, 2, tzinfo=UTC)
    return Complaint(
        id=uuid.uuid4(),
        number="C20260930-000001",
        hall_code="GD-SZ-001",
        channel="hall_counter",
        category="billing",
        priority="normal",
        customer_name="张三",
        customer_phone="13812345678",
        description="charged twice",
        received_by=received_by,
        received_at=now,
        registered_at=now,
        request_fingerprint="f",
    )


def test_whoever_receives_a_complaint_owns_it_first() -> None:
    complaint = register(received_by="clerk-17")

    assert complaint.owner == "clerk-17"
    assert complaint.status == "open"
    [registered] = complaint.collect_events()
    assert isinstance(registered, Complaint.Registered)


def test_a_hall_is_addressed_by_its_code() -> None:
    hall = Hall(hall_code="GD-SZ-001", name="福田", province="广东", city="深圳", level=1, ownership="self_operated")

    assert hall.id == hall_aggregate_id("GD-SZ-001") != hall_aggregate_id("GD-SZ-002")


def test_same_request_content_has_same_fingerprint() -> None:
    request = RegisterComplaint("H", "app", "billing", "normal", "张三", "13812345678", "text")
    changed = RegisterComplaint("H", "app", "billing", "urgent", "张三", "13812345678", "text")

    assert request.fingerprint() == RegisterComplaint(**request.__dict__).fingerprint()
    assert request.fingerprint() != changed.fingerprint()


def test_phone_keeps_only_prefix_and_last_four_digits() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("12345") == "*****"


def test_name_keeps_only_the_family_name() -> None:
    assert mask_name("张三丰") == "张**"
