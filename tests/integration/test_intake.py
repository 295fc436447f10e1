"""A complaint posted over REST reaches the projection's timeline through the store, relay and broker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import datetime, timedelta

from aiokafka import AIOKafkaProducer

from shared.auth import Role
from shared.consumer import ReceivedMessage, dead_letter_record
from shared.contracts import ComplaintRegisteredV3, build_event, encode_event
from shared.organisation import OrgUnit
from shared.topics import COMPLAINTS_EVENTS, dead_letter_topic
from tests.integration.harness import StackClient, bearer, complaint_body, staff_token


async def test_every_posted_complaint_appears_once_in_the_timeline(client: StackClient) -> None:
    hall_id = await client.register_hall()
    semaphore = asyncio.Semaphore(8)

    async def post(index: int) -> str:
        async with semaphore:
            response = await client.post_complaint(complaint_body(hall_id, f"complaint {index}"))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    complaint_ids = set(await asyncio.gather(*(post(i) for i in range(200))))

    counts = await client.wait_until_projected(complaint_ids, timeout=30)
    assert set(counts) == complaint_ids
    assert set(counts.values()) == {1}


async def test_timeline_lists_the_registration_with_its_time_and_type(client: StackClient) -> None:
    hall_id = await client.register_hall()
    registered = (await client.post_complaint(complaint_body(hall_id))).json()

    await client.wait_until_projected({registered["id"]})
    response = await client.http.get(f"{client.projections_url}/api/v1/complaints/{registered['id']}/timeline")

    assert response.status_code == 200
    [entry] = response.json()["events"]
    assert entry["type"] == "ComplaintRegistered"
    assert entry["version"] == 1
    assert entry["details"]["complaint_number"] == registered["number"]
    assert datetime.fromisoformat(entry["occurred_at"]) >= datetime.fromisoformat(registered["registered_at"])
    assert "13812345678" not in response.text and "张三" not in response.text


async def test_a_timeline_comes_a_page_at_a_time_and_the_pages_hold_every_event_once(client: StackClient) -> None:
    hall_id = await client.register_hall()
    complaint = (await client.post_complaint(complaint_body(hall_id))).json()["id"]
    check = {"substantiated": False, "root_cause": "misread", "root_cause_class": "customer_side"}
    steps = [("acknowledge", {}), ("check", check | {"responsible_unit": hall_id})]
    steps += [("contact", {"outcome": outcome}) for outcome in ("unreachable", "call_back_later", "reached")]
    for action, body in steps:
        assert (await client.step(complaint, action, body)).status_code == 200, action
    everything = await client.wait_for_timeline(complaint, 1 + len(steps))
    assert len(everything) == 1 + len(steps)
    url = f"{client.projections_url}/api/v1/complaints/{complaint}/timeline"

    pages, after = [], None
    while True:
        page = (await client.http.get(url, params={"limit": 1} | ({"after": after} if after else {}))).json()
        pages.append(page["events"])
        if (after := page["next_cursor"]) is None:
            break
    assert [len(events) for events in pages] == [1] * len(everything)
    assert [event for events in pages for event in events] == everything
    refused = await client.http.get(url, params={"after": "not-a-cursor"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["query", "after"]
    assert (await client.http.get(url, params={"limit": 1001})).status_code == 422


async def test_registered_complaint_has_number_owner_and_masked_contact(client: StackClient) -> None:
    hall_id = await client.register_hall()
    created = await client.post_complaint(complaint_body(hall_id))
    url = f"{client.complaints_url}/api/v1/complaints/{created.json()['id']}"

    manager = await client.http.get(url, headers=bearer(staff_token("qm-1", OrgUnit(), Role.quality_manager)))
    handler = await client.http.get(url, headers=bearer(staff_token("h-1", OrgUnit(), Role.handler)))

    assert created.status_code == 201
    complaint = manager.json()
    assert complaint["number"].startswith("C") and complaint["status"] == "open"
    assert complaint["owner"] == "test-admin"  # the receiving staff member, from the credential
    assert complaint["customer"] == {"name": "张*", "phone": "138********", "email": None}
    assert handler.json()["customer"] == {"name": "张三", "phone": "13812345678", "email": None}


async def test_invalid_complaint_gets_422_naming_each_bad_field(client: StackClient) -> None:
    body = complaint_body("any-hall", description="")
    body["channel"] = "carrier_pigeon"
    body["customer"]["phone"] = "call me"

    response = await client.post_complaint(body)

    assert response.status_code == 422
    bad_fields = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert bad_fields == {("body", "channel"), ("body", "description"), ("body", "customer", "phone")}


async def test_malformed_json_gets_422_not_500(client: StackClient) -> None:
    response = await client.http.post(
        f"{client.complaints_url}/api/v1/complaints",
        content=b'{"hall_id": ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422


async def test_complaint_for_unknown_hall_is_refused_naming_the_hall(client: StackClient) -> None:
    key = str(uuid.uuid4())
    response = await client.post_complaint(complaint_body("HALL-NEVER-REGISTERED"), idempotency_key=key)

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body", "hall_id"], "msg": "no hall 'HALL-NEVER-REGISTERED' is registered", "type": "unknown_hall"}
    ]


async def test_received_at_in_the_future_or_too_old_is_refused(client: StackClient) -> None:
    hall_id = await client.register_hall()
    for received_at in (client.now() + timedelta(hours=1), client.now() - timedelta(days=31)):
        body = {**complaint_body(hall_id), "received_at": received_at.isoformat()}
        response = await client.post_complaint(body)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "received_at"]


async def test_late_submission_keeps_the_instant_it_was_received(client: StackClient) -> None:
    hall_id = await client.register_hall()
    received_at = (client.now() - timedelta(days=2)).replace(microsecond=0)
    body = {**complaint_body(hall_id), "received_at": received_at.isoformat()}

    response = await client.post_complaint(body)

    assert response.status_code == 201
    assert datetime.fromisoformat(response.json()["received_at"]) == received_at


async def test_retry_with_same_idempotency_key_returns_the_same_complaint(client: StackClient) -> None:
    hall_id = await client.register_hall()
    key = str(uuid.uuid4())

    first = await client.post_complaint(complaint_body(hall_id), idempotency_key=key)
    again = await client.post_complaint(complaint_body(hall_id), idempotency_key=key)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    counts = await client.wait_until_projected({first.json()["id"]})
    assert counts == {first.json()["id"]: 1}


async def test_idempotency_key_reused_for_another_request_is_refused(client: StackClient) -> None:
    hall_id = await client.register_hall()
    key = str(uuid.uuid4())
    await client.post_complaint(complaint_body(hall_id, "first"), idempotency_key=key)

    response = await client.post_complaint(complaint_body(hall_id, "different"), idempotency_key=key)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_registering_a_hall_twice_is_a_conflict(client: StackClient) -> None:
    hall_id = await client.register_hall()
    response = await client.http.post(
        f"{client.complaints_url}/api/v1/halls",
        json={"hall_id": hall_id, "name": "x", "province": "x", "city": "x", "level": 2, "ownership": "partner"},
    )
    assert response.status_code == 409
    assert response.json()["detail"][0]["type"] == "hall_exists"


async def test_idempotency_keys_belong_to_their_caller_and_to_one_kind_of_request(client: StackClient) -> None:
    hall_id = await client.register_hall()
    unit = OrgUnit(("广东", "深圳", hall_id))
    alice, bob = (bearer(staff_token(name, unit, Role.handler)) for name in ("handler-a", "handler-b"))
    body = complaint_body(hall_id)
    by_alice = await client.post_complaint(body, idempotency_key="crm-7", headers=alice)
    by_bob = await client.post_complaint(body, idempotency_key="crm-7", headers=bob)
    assert (by_alice.status_code, by_bob.status_code) == (201, 201)
    assert by_bob.json()["id"] != by_alice.json()["id"] and "Idempotent-Replayed" not in by_bob.headers

    complaint = by_alice.json()["id"]
    acknowledged = await client.step(complaint, "acknowledge", idempotency_key="step-1", headers=alice)
    checked = await client.step(
        complaint,
        "check",
        {
            "substantiated": False,
            "root_cause": "misread",
            "root_cause_class": "customer_side",
            "responsible_unit": hall_id,
        },
        idempotency_key="step-1",
        headers=bob,
    )
    assert (acknowledged.status_code, checked.status_code) == (200, 200)
    assert "Idempotent-Replayed" not in checked.headers and checked.json()["version"] > acknowledged.json()["version"]

    # A complaint key that reads like another kind's is its own.
    named = await client.post_complaint(body, idempotency_key="inspection:K1")
    inspected = await client.http.post(
        f"{client.complaints_url}/api/v1/inspections",
        json={"hall_id": hall_id, "type": "self_check", "failed_items": []},
        headers={"Idempotency-Key": "K1"},
    )
    assert (named.status_code, inspected.status_code) == (201, 201)


async def test_a_hall_registration_retried_with_its_key_answers_as_the_first_did(client: StackClient) -> None:
    hall = {"hall_id": f"KEYED-{uuid.uuid4().hex[:8]}", "name": "x", "province": "广东", "city": "深圳", "level": 2}
    hall["ownership"] = "partner"
    url = f"{client.complaints_url}/api/v1/halls"
    first = await client.http.post(url, json=hall, headers={"Idempotency-Key": "hall-1"})
    retry = await client.http.post(url, json=hall, headers={"Idempotency-Key": "hall-1"})
    changed = await client.http.post(url, json={**hall, "name": "y"}, headers={"Idempotency-Key": "hall-1"})
    unkeyed = await client.http.post(url, json=hall)
    assert (first.status_code, retry.status_code, changed.status_code, unkeyed.status_code) == (201, 201, 422, 409)
    assert retry.headers["Idempotent-Replayed"] == "true" and retry.json() == first.json()


async def test_a_city_with_a_slash_gets_422_not_500(client: StackClient) -> None:
    """A "/" would split the organisation unit's path (group/province/city): the fuzzer found the 500."""
    response = await client.http.post(
        f"{client.complaints_url}/api/v1/halls",
        json={
            "hall_id": "SLASH-1",
            "name": "x",
            "province": "广东",
            "city": "深/圳",
            "level": 2,
            "ownership": "partner",
        },
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "city"]


async def test_unknown_complaint_is_404_on_both_services(client: StackClient) -> None:
    unknown = uuid.uuid4()
    assert (await client.http.get(f"{client.complaints_url}/api/v1/complaints/{unknown}")).status_code == 404
    timeline = await client.http.get(f"{client.projections_url}/api/v1/complaints/{unknown}/timeline")
    assert timeline.status_code == 404


async def test_every_service_is_live_and_ready(client: StackClient) -> None:
    for name, service in client.stack.services.items():
        assert (await client.http.get(f"{service.url}/healthz")).status_code == 200
        ready = await client.http.get(f"{service.url}/readyz")
        consumer = {} if name == "complaints" else {"consumer": True}  # the complaints service consumes nothing
        assert ready.json() == {"status": "ready", "checks": {"database": True, **consumer}, "broker": True}


async def test_malformed_message_is_dead_lettered_and_consumption_continues(client: StackClient) -> None:
    poison = f"not an event {uuid.uuid4()}".encode()
    unknown_type = (
        b'{"event_id": "%s", "event_type": "ComplaintTeleported", "schema_version": 1, "source": "x",'
        b' "aggregate_id": "%s", "aggregate_version": 1, "occurred_at": "2026-01-01T00:00:00Z", "data": {}}'
        % (str(uuid.uuid4()).encode(), str(uuid.uuid4()).encode())
    )
    producer = AIOKafkaProducer(bootstrap_servers=client.stack.bootstrap_servers)
    await producer.start()
    try:
        for value in (poison, unknown_type):
            await producer.send_and_wait(COMPLAINTS_EVENTS, value, key=b"poison")
    finally:
        await producer.stop()
    hall_id = await client.register_hall()
    after = (await client.post_complaint(complaint_body(hall_id))).json()["id"]

    assert await client.wait_until_projected({after}) == {after: 1}
    letters = await client.dead_letters()
    reasons = {letter["value"]: letter["reason"] for letter in letters}
    assert reasons[poison.decode()].startswith("not JSON")
    assert reasons[unknown_type.decode()] == "unknown event type 'ComplaintTeleported' version 1"


async def test_simultaneous_retries_with_one_key_create_one_complaint_and_lose_no_other(
    client: StackClient,
) -> None:
    hall_id = await client.register_hall()
    key = str(uuid.uuid4())

    retries, others = await asyncio.gather(
        asyncio.gather(*(client.post_complaint(complaint_body(hall_id), key) for _ in range(10))),
        asyncio.gather(*(client.post_complaint(complaint_body(hall_id, f"other {i}")) for i in range(10))),
    )

    assert {response.status_code for response in [*retries, *others]} == {201}
    [complaint_id] = {response.json()["id"] for response in retries}
    assert [r.headers.get("Idempotent-Replayed") for r in retries].count(None) == 1
    other_ids = {response.json()["id"] for response in others}
    for other_id in other_ids:
        fetched = await client.http.get(f"{client.complaints_url}/api/v1/complaints/{other_id}")
        assert fetched.status_code == 200, "a complaint answered 201 must be stored"
    expected = {complaint_id: 1} | dict.fromkeys(other_ids, 1)
    assert await client.wait_until_projected({complaint_id, *other_ids}) == expected


async def progress_of(client: StackClient, number: str) -> int:
    async with client.acting_as({}) as customer:
        response = await customer.http.post(
            f"{client.complaints_url}/api/v1/public/complaints/progress",
            json={"number": number, "phone_last_four": "5678"},
        )
    return response.status_code


async def test_concurrent_complaints_get_distinct_numbers_each_found_at_once(client: StackClient) -> None:
    hall_id = await client.register_hall()
    semaphore = asyncio.Semaphore(16)

    async def post() -> str:
        async with semaphore:
            response = await client.post_complaint(complaint_body(hall_id))
        assert response.status_code == 201, response.text
        return str(response.json()["number"])

    numbers = await asyncio.gather(*(post() for _ in range(150)))  # more than one block of serials

    assert len(set(numbers)) == len(numbers)
    assert {await progress_of(client, number) for number in numbers[::10]} == {200}


async def test_numbers_of_the_legacy_table_are_adopted_at_start_up(client: StackClient) -> None:
    """Before numbers were saved with their complaints, the table `complaint_numbers` mapped them."""
    hall_id = await client.register_hall()
    complaint = (await client.post_complaint(complaint_body(hall_id))).json()
    legacy_number = "C20260101-999999"
    await client.database.execute(
        "CREATE TABLE complaints.complaint_numbers (number text PRIMARY KEY, complaint_id uuid NOT NULL UNIQUE)"
    )
    await client.database.execute(
        "INSERT INTO complaints.complaint_numbers VALUES ($1, $2), ('C20260101-999998', $3)",
        legacy_number,
        uuid.UUID(complaint["id"]),
        uuid.uuid4(),  # reserved for a save that failed
    )

    client.stack.services["complaints"].kill()  # a deliberate kill: the stack leaves it down
    await asyncio.to_thread(client.stack.restart_service, "complaints")

    assert await progress_of(client, legacy_number) == 200
    assert await progress_of(client, "C20260101-999998") == 404
    assert await client.database.fetchval("SELECT to_regclass('complaints.complaint_numbers')") is None


def replay_dead_letters(client: StackClient, consumer: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "services.replay_dead_letters", consumer],
        env=client.stack.service_env(),
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout


async def test_dead_letters_valid_now_are_replayed_once_and_the_others_listed(client: StackClient) -> None:
    hall_id = await client.register_hall()
    complaint_id = uuid.uuid4()
    registered = build_event(
        ComplaintRegisteredV3(
            complaint_number=f"C-REPLAY-{complaint_id.hex[:8]}",
            hall_id=hall_id,
            channel="hotline_10000",
            category="billing",
            priority="normal",
            owner="replay-test",
            received_at=client.now(),
            province="广东",
            city="深圳",
            repeat_count=0,
        ),
        source="complaints",
        aggregate_id=complaint_id,
        aggregate_version=1,
        occurred_at=client.now(),
    )
    refused = ReceivedMessage(COMPLAINTS_EVENTS, 0, 10**9, str(complaint_id).encode(), encode_event(registered))
    garbage = ReceivedMessage(COMPLAINTS_EVENTS, 0, 10**9 + 1, b"poison", b"still not an event")
    producer = AIOKafkaProducer(bootstrap_servers=client.stack.bootstrap_servers)
    await producer.start()
    try:
        for letter in (refused, garbage):
            record = dead_letter_record(letter, "a handler bug, since fixed", "projections")
            await producer.send_and_wait(dead_letter_topic("projections"), record, key=letter.key)
    finally:
        await producer.stop()

    first = await asyncio.to_thread(replay_dead_letters, client, "projections")
    assert await client.wait_until_projected({str(complaint_id)}) == {str(complaint_id): 1}
    second = await asyncio.to_thread(replay_dead_letters, client, "projections")

    sent = int(first.rsplit("projections: ", 1)[1].split()[0])
    assert sent >= 1 and "still invalid: " in first and "not JSON" in first, first
    assert f"projections: 0 dead letters sent again, {sent} replayed before" in second, second
    assert (await client.projected_counts({str(complaint_id)})) == {str(complaint_id): 1}  # applied once
