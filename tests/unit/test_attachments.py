"""What an attachment may be, how its bytes are addressed, and how long one is kept."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Mapper, UUIDAsHex

from services.complaints.application import ComplaintsApplication, FindingInput, RecordInspection
from services.complaints.attachments import AttachmentRef, RetentionPolicy, blob_path, clean_name, sniff_type
from services.complaints.domain import Step, with_new_files
from services.complaints.group_commit import InMemoryBatches
from services.complaints.inspections import RectificationOrder
from services.complaints.outbox import to_contract
from services.complaints.personal_data import InMemoryDataKeys
from services.complaints.repositories import InMemorySerialBlocks, InMemoryVerificationAttempts
from shared.contracts import ComplaintRectifiedV3, OrderRectifiedV2, RectificationOrderOpenedV3
from shared.organisation import OrgUnit
from tests.unit.test_complaints_application import ADMIN, HALL, IN_MEMORY, MASTER_KEY

PADDING = b"\x00" * 64
ALLOWED = {
    "png": (b"\x89PNG\r\n\x1a\n" + PADDING, "image/png"),
    "jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + PADDING, "image/jpeg"),
    "gif": (b"GIF89a" + PADDING, "image/gif"),
    "webp": (b"RIFF\x00\x00\x00\x00WEBPVP8 " + PADDING, "image/webp"),
    "pdf": (b"%PDF-1.7\n" + PADDING, "application/pdf"),
    "wav": (b"RIFF\x00\x00\x00\x00WAVEfmt " + PADDING, "audio/wav"),
    "mp3 with an ID3 tag": (b"ID3\x04\x00\x00\x00\x00\x00\x00" + PADDING, "audio/mpeg"),
    "mp3 frames alone": (b"\xff\xfb\x90\x64" + PADDING, "audio/mpeg"),
    "amr": (b"#!AMR\n" + PADDING, "audio/amr"),
    "m4a": (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom" + PADDING, "audio/mp4"),
    "ogg": (b"OggS\x00\x02" + PADDING, "audio/ogg"),
}
REFUSED = {
    "windows executable": b"MZ\x90\x00" + PADDING,
    "html": b"<!DOCTYPE html><html><script>alert(1)</script>",
    "mp4 video": b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + PADDING,
    "zip": b"PK\x03\x04" + PADDING,
    "plain text": b"just some words, no signature",
    "nothing": b"",
}


@pytest.mark.parametrize("kind", ALLOWED)
def test_an_allowed_file_is_known_by_its_own_bytes(kind: str) -> None:
    head, content_type = ALLOWED[kind]
    assert sniff_type(head) == content_type


@pytest.mark.parametrize("kind", REFUSED)
def test_a_file_of_any_other_type_is_refused_whatever_it_is_called(kind: str) -> None:
    assert sniff_type(REFUSED[kind]) is None


def test_a_file_is_kept_under_the_digest_of_its_bytes_fanned_out_by_its_first_byte() -> None:
    digest = hashlib.sha256(b"photo of the queue").hexdigest()
    assert blob_path(digest) == f"{digest[:2]}/{digest}"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABCDEF" * 11, "a" * 63, ""])
def test_only_a_sha256_hex_digest_addresses_a_file(bad: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        blob_path(bad)


def test_a_name_keeps_no_folders_control_characters_or_phone_numbers() -> None:
    assert clean_name("C:\\Users\\李四\\13812345678 通话\x00录音.amr") == "138******** 通话录音.amr"
    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name(None) == "unnamed"
    assert len(clean_name("长" * 500)) == 200


def test_an_unlinked_upload_is_due_after_the_policys_hours_and_a_linked_one_never() -> None:
    policy = RetentionPolicy(unlinked_hours=24)
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    assert policy.is_due(now - timedelta(hours=25), linked=False, now=now)
    assert not policy.is_due(now - timedelta(hours=23), linked=False, now=now)
    assert not policy.is_due(now - timedelta(days=3650), linked=True, now=now)


def test_a_step_message_from_before_attachments_validates_with_none() -> None:
    step = {"actor": "hm", "reason": "done", "at": "2026-12-02T10:00:00+08:00", "report": "fixed", "evidence": []}
    assert OrderRectifiedV2.model_validate(step).attachments == []
    ref = AttachmentRef(hashlib.sha256(b"x").hexdigest(), 1, "image/png", "door.png")
    complaint_step = {
        **{key: step[key] for key in ("actor", "reason", "at", "evidence")},
        "action": "refund",
        "rectification_owner": "SZ-BILL",
        "deadline": "2026-12-05T10:00:00+08:00",
        "attachments": [ref.as_event_field()],
    }
    assert ComplaintRectifiedV3.model_validate(complaint_step).attachments[0].sha256 == ref.sha256


def test_a_report_stored_before_reports_had_attachments_still_loads_with_none() -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    step = Step(actor="hall-manager", reason="done", at=now)
    order = RectificationOrder(
        id=uuid.uuid4(),
        inspection_id=uuid.uuid4(),
        hall_code="GD-SZ-001",
        item_id="A1",
        points=2,
        description="no greeting",
        deadline=now,
        at=now,
        attachments=[],
    )
    order.communicate(step)
    order.acknowledge(step)
    order.rectify("greeter posted", [], step)
    *earlier, rectified = order.collect_events()
    stored_before = object.__new__(type(rectified))  # as the store's mapper rebuilds an event from its state
    stored_before.__dict__.update({name: value for name, value in vars(rectified).items() if name != "attachments"})

    replayed: Any = None
    for stored in [*earlier, stored_before]:
        replayed = stored.mutate(replayed)

    assert (replayed.status, replayed.attachments) == ("rectified", [])


def ref_of(content: bytes, name: str = "door.png") -> AttachmentRef:
    return AttachmentRef(hashlib.sha256(content).hexdigest(), len(content), "image/png", name)


def test_a_subjects_files_are_listed_once_each_in_the_order_first_referred_to() -> None:
    door, queue, spill = (ref_of(b"door").as_event_field(), ref_of(b"queue").as_event_field(), ref_of(b"spill"))

    assert with_new_files([door, queue], [spill.as_event_field(), door]) == [door, queue, spill.as_event_field()]
    assert with_new_files([door], None) == [door]


def test_a_retried_inspection_is_the_same_request_whatever_its_files_are_named_now() -> None:
    finding = FindingInput("A1", "no greeting", attachments=(ref_of(b"door"),))
    first = RecordInspection("GD-SZ-001", "self_check", frozenset({"A1", "E1", "B2"}), (finding,))
    renamed = replace(finding, attachments=(ref_of(b"door", name="门口.png"),))

    assert replace(first, findings=(renamed,)).fingerprint() == first.fingerprint()
    assert replace(first, failed_items=frozenset({"B2", "E1", "A1"})).fingerprint() == first.fingerprint()
    other_file = replace(finding, attachments=(ref_of(b"queue"),))
    assert replace(first, findings=(other_file,)).fingerprint() != first.fingerprint()


async def test_a_findings_files_open_its_order_are_kept_with_it_and_published_without_who_uploaded_them() -> None:
    keys = InMemoryDataKeys()
    complaints = ComplaintsApplication(
        IN_MEMORY,
        InMemorySerialBlocks(),
        InMemoryVerificationAttempts(),
        MASTER_KEY,
        lambda _: keys,
        lambda application: InMemoryBatches(application, keys),
        lambda: datetime(2026, 12, 2, 2, tzinfo=UTC),
    )
    complaints.register_hall(HALL, ADMIN)
    photo = ref_of(b"door")
    findings = (FindingInput("A1", "no greeting"), FindingInput("E1", "spill", attachments=(photo, photo)))
    kept: list[tuple[int, uuid.UUID, OrgUnit]] = []

    inspection, _ = complaints.record_inspection(
        RecordInspection(HALL.hall_code, "self_check", frozenset({"A1", "E1"}), findings),
        ADMIN,
        keep_evidence=lambda index, order, unit: kept.append((index, order.id, unit)),
    )

    without, with_photo = (complaints.get_order(f["order_id"], ADMIN) for f in inspection.findings)
    assert (without.attachments, with_photo.attachments) == ([], [photo.as_event_field()])
    assert kept == [(1, with_photo.id, OrgUnit.of_hall("广东", "深圳", HALL.hall_code))]
    opened = next(iter(complaints.repository.event_store.get(with_photo.id)))
    published = await to_contract(opened, complaints.hall_referred_to)
    assert isinstance(published, RectificationOrderOpenedV3)
    assert [file.model_dump() for file in published.attachments] == [photo.as_event_field()]
    complaints.close()


def test_an_order_opened_before_findings_had_files_loads_and_publishes_with_none() -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    order = RectificationOrder(
        id=uuid.uuid4(),
        inspection_id=uuid.uuid4(),
        hall_code="GD-SZ-001",
        item_id="A1",
        points=2,
        description="no greeting",
        deadline=now,
        at=now,
        attachments=[],
    )
    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DatetimeAsISO())
    mapper: Mapper[uuid.UUID] = Mapper(transcoder)
    stored = mapper.to_stored_event(order.collect_events()[0])
    state = json.loads(stored.state)
    del state["attachments"], state["class_version"]  # as version 1 of the event was stored
    stored_before = replace(stored, state=json.dumps(state).encode())

    opened = mapper.to_domain_event(stored_before)
    assert isinstance(opened, RectificationOrder.Opened)
    loaded = opened.mutate(None)

    assert isinstance(loaded, RectificationOrder) and loaded.attachments == []
    message = {
        "inspection_id": str(order.inspection_id),
        "hall_id": "GD-SZ-001",
        "item_id": "A1",
        "points": 2,
        "description": "no greeting",
        "deadline": now.isoformat(),
        "at": now.isoformat(),
        "province": "广东",
        "city": "深圳",
    }
    assert RectificationOrderOpenedV3.model_validate(message).attachments == []
