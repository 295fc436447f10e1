"""What an attachment may be, how its bytes are addressed, and how long one is kept."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.complaints.attachments import AttachmentRef, RetentionPolicy, blob_path, clean_name, sniff_type
from services.complaints.domain import Step
from services.complaints.inspections import RectificationOrder
from shared.contracts import ComplaintRectifiedV3, OrderRectifiedV2

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
