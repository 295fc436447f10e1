from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from shared.contracts import (
    SCORING_FACT,
    AcknowledgedFact,
    ComplaintRegisteredFact,
    ComplaintRegisteredV1,
    ComplaintRegisteredV2,
    Envelope,
    FirstResponseStoppedFact,
    InspectedFact,
    InvalidEvent,
    ScoreRecalculatedV3,
    build_event,
    decode_event,
    encode_event,
    event_id_for,
)

REGISTERED = ComplaintRegisteredV1(
    complaint_number="C20260930-000001",
    hall_id="GD-SZ-001",
    channel="hotline_10000",
    category="billing",
    priority="urgent",
    owner="GD-SZ-001",
    received_at=datetime(2026, 9, 30, 2, tzinfo=UTC),
)


def registered_event(payload: ComplaintRegisteredV1 = REGISTERED) -> bytes:
    event = build_event(
        payload,
        source="complaints",
        aggregate_id=uuid.UUID(int=7),
        aggregate_version=1,
        occurred_at=datetime(2026, 9, 30, 2, tzinfo=UTC),
    )
    return encode_event(event)


def test_an_encoded_event_decodes_to_the_same_payload() -> None:
    decoded = decode_event(registered_event())

    assert isinstance(decoded.payload, ComplaintRegisteredV1)
    assert decoded.payload.priority == "urgent"
    assert decoded.envelope.event_id == event_id_for(uuid.UUID(int=7), 1)


def test_each_schema_version_decodes_to_its_own_contract() -> None:
    second = ComplaintRegisteredV2(**REGISTERED.model_dump(), province="广东", city="深圳")

    assert type(decode_event(registered_event(second)).payload) is ComplaintRegisteredV2
    assert type(decode_event(registered_event(REGISTERED)).payload) is ComplaintRegisteredV1


def test_the_wire_format_is_the_envelope_with_the_contract_as_json_data() -> None:
    """What consumers already deployed read: decoding in one pass must not change what is sent."""
    document = json.loads(registered_event())
    untyped = Envelope.model_validate(document)

    assert set(document) == set(Envelope.model_fields)
    assert untyped.data == REGISTERED.model_dump(mode="json")


def test_event_id_is_stable_so_a_republished_event_is_recognised() -> None:
    assert event_id_for(uuid.UUID(int=7), 1) == event_id_for(uuid.UUID(int=7), 1)
    assert event_id_for(uuid.UUID(int=7), 1) != event_id_for(uuid.UUID(int=7), 2)


def test_unknown_event_type_is_refused_with_its_name() -> None:
    document = json.loads(registered_event())
    document["event_type"] = "ComplaintTeleported"

    with pytest.raises(InvalidEvent, match="unknown event type 'ComplaintTeleported' version 1"):
        decode_event(json.dumps(document).encode())


def test_unknown_schema_version_is_refused() -> None:
    document = json.loads(registered_event())
    document["schema_version"] = 9

    with pytest.raises(InvalidEvent, match="version 9"):
        decode_event(json.dumps(document).encode())


def test_payload_missing_a_field_is_refused_naming_the_field() -> None:
    document = json.loads(registered_event())
    del document["data"]["hall_id"]

    with pytest.raises(InvalidEvent, match=r"bad ComplaintRegistered v1 data: hall_id: Field required"):
        decode_event(json.dumps(document).encode())


def test_envelope_without_aggregate_is_refused() -> None:
    document = json.loads(registered_event())
    del document["aggregate_id"]

    with pytest.raises(InvalidEvent, match="bad envelope: aggregate_id"):
        decode_event(json.dumps(document).encode())


@pytest.mark.parametrize("raw", [None, b"", b"\xff\xfe", b"{not json"])
def test_empty_or_non_json_messages_are_refused(raw: bytes | None) -> None:
    with pytest.raises(InvalidEvent):
        decode_event(raw)


def test_published_complaint_carries_no_customer_contact() -> None:
    assert not {"customer_name", "customer_phone", "customer"} & set(ComplaintRegisteredV1.model_fields)


def score_change(fact: dict[str, object]) -> bytes:
    """A version-3 score change as scoring publishes it, with `fact` as its JSON."""
    change = ScoreRecalculatedV3(
        hall_id="GD-SZ-001",
        period="2026-11",
        subject_id=uuid.UUID(int=7),
        fact=InspectedFact(subject=uuid.UUID(int=7), bonus=3.0),
        source_event_id=uuid.UUID(int=8),
        source_event_type="InspectionRecorded",
        policy_version="2026-01",
        score_before=100,
        score=100,
        components={},
        deductions=0,
        changes=[],
        at=datetime(2026, 11, 16, 2, tzinfo=UTC),
        bonus=3,
    )
    event = build_event(
        change, source="scoring", aggregate_id=uuid.UUID(int=9), aggregate_version=1, occurred_at=change.at
    )
    document = json.loads(encode_event(event))
    document["data"]["fact"] = fact
    return json.dumps(document).encode()


def test_a_score_changes_fact_decodes_to_its_typed_fact() -> None:
    subject = str(uuid.UUID(int=7))
    decoded = decode_event(score_change({"kind": "first_response_stopped", "subject": subject, "breached": True}))

    assert isinstance(decoded.payload, ScoreRecalculatedV3)
    assert decoded.payload.fact == FirstResponseStoppedFact(subject=uuid.UUID(int=7), breached=True)


def test_the_untyped_facts_of_earlier_score_changes_read_as_typed_facts() -> None:
    """Stored scorecards and score_changes rows hold facts as versions 1 and 2 published them."""
    subject = str(uuid.UUID(int=7))
    earlier = [
        {"kind": "acknowledged", "subject": subject},  # before escalation published verdicts
        {"kind": "inspected", "subject": subject, "bonus": 2},  # not rated: no innovation_rating at all
        {"kind": "complaint_registered", "subject": subject, "priority": "major", "channel": "app"},
    ]

    assert [SCORING_FACT.validate_python(fact) for fact in earlier] == [
        AcknowledgedFact(subject=uuid.UUID(int=7)),
        InspectedFact(subject=uuid.UUID(int=7), bonus=2.0, innovation_rating=None),
        ComplaintRegisteredFact(subject=uuid.UUID(int=7), priority="major", channel="app"),
    ]


def test_a_score_change_whose_fact_is_of_no_known_kind_or_lacks_a_field_is_refused_naming_it() -> None:
    subject = str(uuid.UUID(int=7))

    with pytest.raises(InvalidEvent, match="bad ScoreRecalculated v3 data: fact: Input tag 'teleported'"):
        decode_event(score_change({"kind": "teleported", "subject": subject}))
    with pytest.raises(InvalidEvent, match=r"fact\.first_response_stopped\.breached: Field required"):
        decode_event(score_change({"kind": "first_response_stopped", "subject": subject}))
