"""The closed loop over REST: every path, its refusals, safe retries and racing writers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from shared.auth import Role
from shared.organisation import OrgUnit
from shared.topics import COMPLAINTS_EVENTS
from tests.integration.harness import StackClient, bearer, complaint_body, eventually, staff_token

RECTIFY = {
    "action": "refund the double charge",
    "owner": "billing-team",
    "deadline": "2030-01-01T18:00:00+08:00",
    "evidence": ["ticket://BILL-881"],
}
CITY_CENTRE = "group/广东/深圳"  # the city of `register_hall`'s halls, e.g. its customer service centre
CHECK = {
    "substantiated": True,
    "root_cause": "duplicate billing run",
    "root_cause_class": "billing_system",
    "responsible_unit": CITY_CENTRE,
}


async def new_complaint(client: StackClient) -> str:
    hall_id = await client.register_hall()
    response = await client.post_complaint(complaint_body(hall_id))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def walk(client: StackClient, complaint_id: str, steps: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for action, body in steps:
        response = await client.step(complaint_id, action, body)
        assert response.status_code == 200, f"{action}: {response.text}"
        state = response.json()
    return state


async def timeline_types(client: StackClient, complaint_id: str, length: int) -> list[str]:
    return [entry["type"] for entry in await client.wait_for_timeline(complaint_id, length)]


async def test_full_loop_with_hand_off_ends_closed_and_the_timeline_shows_every_step(client: StackClient) -> None:
    complaint_id = await new_complaint(client)

    final = await walk(
        client,
        complaint_id,
        [
            ("dispatch", {"to_unit": CITY_CENTRE}),
            ("accept", {}),
            ("acknowledge", {}),
            ("check", CHECK),
            ("contact", {"outcome": "reached"}),
            ("rectify", RECTIFY),
            ("feedback", {"satisfaction": "satisfied"}),
            ("close", {}),
        ],
    )

    assert final["status"] == "closed" and final["owner"] == final["owner_unit"] == CITY_CENTRE
    events = await client.wait_for_timeline(complaint_id, 9)
    assert [e["type"] for e in events] == [
        "ComplaintRegistered",
        "ComplaintDispatched",
        "ComplaintHandOffAccepted",
        "ComplaintAcknowledged",
        "ComplaintChecked",
        "CustomerContacted",
        "ComplaintRectified",
        "FeedbackReceived",
        "ComplaintClosed",
    ]
    assert [e["version"] for e in events] == list(range(1, 10))
    for entry in events[1:]:
        assert entry["details"]["actor"] == "test-admin"
        assert entry["details"]["reason"].endswith("for the test")
    assert events[7]["details"]["score"] == 5


async def test_resolved_on_the_spot_still_needs_feedback_before_closing(client: StackClient) -> None:
    complaint_id = await new_complaint(client)
    await walk(client, complaint_id, [("resolve-on-spot", {})])

    refused = await client.step(complaint_id, "close")
    await walk(client, complaint_id, [("feedback", {"satisfaction": "basically_satisfied"}), ("close", {})])

    assert refused.status_code == 409
    assert refused.json()["detail"][0]["msg"] == "feedback from the customer is missing"
    assert await timeline_types(client, complaint_id, 4) == [
        "ComplaintRegistered",
        "ComplaintResolvedOnSpot",
        "FeedbackReceived",
        "ComplaintClosed",
    ]


async def test_unsatisfied_customer_needs_reopen_and_callback_before_closing_again(client: StackClient) -> None:
    complaint_id = await new_complaint(client)
    await walk(
        client,
        complaint_id,
        [
            ("check", CHECK),
            ("contact", {"outcome": "reached"}),
            ("rectify", RECTIFY),
            ("feedback", {"satisfaction": "unsatisfied"}),
        ],
    )

    close_refused = await client.step(complaint_id, "close")
    await walk(client, complaint_id, [("reopen", {})])
    rectify_refused = await client.step(complaint_id, "rectify", RECTIFY)
    final = await walk(
        client,
        complaint_id,
        [
            ("callback", {"outcome": "supervisor apologised"}),
            ("rectify", RECTIFY),
            ("feedback", {"satisfaction": "satisfied"}),
            ("close", {}),
        ],
    )

    assert close_refused.status_code == rectify_refused.status_code == 409
    assert "reopen" in close_refused.json()["detail"][0]["msg"]
    assert "callback" in rectify_refused.json()["detail"][0]["msg"]
    assert final["status"] == "closed" and final["reopen_count"] == 1
    assert (await timeline_types(client, complaint_id, 11))[4:] == [
        "FeedbackReceived",
        "ComplaintReopened",
        "CallbackMade",
        "ComplaintRectified",
        "FeedbackReceived",
        "ComplaintClosed",
    ]


async def test_an_unsatisfied_customer_is_called_back_before_any_path_closes_the_loop(client: StackClient) -> None:
    complaint_id = await new_complaint(client)
    await walk(client, complaint_id, [("resolve-on-spot", {}), ("feedback", {"satisfaction": "unsatisfied"})])
    await walk(client, complaint_id, [("reopen", {})])

    refused = {action: await client.step(complaint_id, action, body) for action, body in CLOSING_STEPS}
    final = await walk(
        client,
        complaint_id,
        [
            ("callback", {"outcome": "supervisor apologised"}),
            ("resolve-on-spot", {}),
            ("feedback", {"satisfaction": "satisfied"}),
            ("close", {}),
        ],
    )

    assert {action: r.status_code for action, r in refused.items()} == {action: 409 for action, _ in CLOSING_STEPS}
    assert all("supervisor callback" in r.json()["detail"][0]["msg"] for r in refused.values())
    assert final["status"] == "closed" and not final["callback_needed"]


CLOSING_STEPS: list[tuple[str, dict[str, Any]]] = [
    ("resolve-on-spot", {}),
    ("rectify", RECTIFY),
    ("feedback", {"satisfaction": "satisfied"}),
    ("close", {}),
]


async def test_pause_and_resume_are_recorded_with_their_reason(client: StackClient) -> None:
    complaint_id = await new_complaint(client)

    paused = await client.step(complaint_id, "pause", {"reason": "customer travelling until Friday"})
    pause_again = await client.step(complaint_id, "pause")
    resumed = await client.step(complaint_id, "resume")

    assert paused.json()["paused"] is True and resumed.json()["paused"] is False
    assert pause_again.status_code == 409
    events = await client.wait_for_timeline(complaint_id, 3)
    assert [e["type"] for e in events] == ["ComplaintRegistered", "ComplaintPaused", "ComplaintResumed"]
    assert events[1]["details"]["reason"] == "customer travelling until Friday"


async def test_manual_escalation_climbs_to_a_validated_unit_above_and_stops_at_the_group(client: StackClient) -> None:
    complaint_id = await new_complaint(client)
    elsewhere = await client.step(complaint_id, "escalate", {"target_unit": "group/江西"})
    unknown = await client.step(complaint_id, "escalate", {"target_unit": "SZ-CITY"})
    first = await client.step(complaint_id, "escalate", {"target_unit": CITY_CENTRE})
    down = await client.step(complaint_id, "escalate", {"target_unit": CITY_CENTRE})
    second = await client.step(complaint_id, "escalate", {"target_unit": "group"})
    past_the_top = await client.step(complaint_id, "escalate", {"target_unit": "group"})

    assert (elsewhere.status_code, unknown.status_code) == (422, 422)
    assert elsewhere.json()["detail"][0]["loc"] == ["body", "target_unit"]
    assert (first.json()["escalation_level"], second.json()["escalation_level"]) == (2, 4)
    assert (down.status_code, past_the_top.status_code) == (409, 409)
    assert "no higher level" in past_the_top.json()["detail"][0]["msg"]
    events = await client.wait_for_timeline(complaint_id, 3)
    assert [(e["details"].get("level"), e["details"].get("target_unit")) for e in events[1:]] == [
        (2, CITY_CENTRE),
        (4, "group"),
    ]


async def test_illegal_steps_are_refused_with_409_saying_what_is_missing(client: StackClient) -> None:
    complaint_id = await new_complaint(client)
    expectations: list[tuple[str, dict[str, Any], str]] = [
        ("feedback", {"satisfaction": "satisfied"}, "rectify (or resolve on the spot) before asking for feedback"),
        ("rectify", RECTIFY, "check the facts before rectifying"),
        ("contact", {"outcome": "reached"}, "check the facts before communicating with the customer"),
        ("accept", {}, "no hand-off is waiting to be accepted; dispatch first"),
        ("callback", {"outcome": "x"}, "a supervisor callback is needed only after unsatisfied feedback and a reopen"),
        ("resume", {}, "the complaint is not paused"),
        ("close", {}, "feedback from the customer is missing"),
        ("reopen", {}, "only a closed complaint or one with unsatisfied feedback can be reopened"),
    ]
    for action, body, message in expectations:
        response = await client.step(complaint_id, action, body)
        assert response.status_code == 409, action
        assert response.json()["detail"] == [{"loc": [], "msg": message, "type": "step_not_allowed"}]

    await walk(
        client, complaint_id, [("resolve-on-spot", {}), ("feedback", {"satisfaction": "satisfied"}), ("close", {})]
    )
    on_closed = await client.step(complaint_id, "acknowledge")
    assert on_closed.status_code == 409
    assert on_closed.json()["detail"][0]["msg"] == "the complaint is closed; reopen it first"
    assert (await client.step(str(uuid.uuid4()), "acknowledge")).status_code == 404


async def test_repeated_step_with_one_key_gives_identical_responses_and_one_event(client: StackClient) -> None:
    complaint_id = await new_complaint(client)
    key = str(uuid.uuid4())

    first = await client.step(complaint_id, "acknowledge", idempotency_key=key)
    await client.step(complaint_id, "pause")
    again = await client.step(complaint_id, "acknowledge", idempotency_key=key)
    reused = await client.step(complaint_id, "resume", idempotency_key=key)

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert reused.status_code == 422
    assert await timeline_types(client, complaint_id, 3) == [
        "ComplaintRegistered",
        "ComplaintAcknowledged",
        "ComplaintPaused",
    ]


async def test_twenty_racing_writers_get_one_success_and_409s(client: StackClient) -> None:
    complaint_id = await new_complaint(client)

    responses = await asyncio.gather(*(client.step(complaint_id, "acknowledge") for _ in range(20)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [409] * 19
    current = await client.http.get(f"{client.complaints_url}/api/v1/complaints/{complaint_id}")
    assert current.json()["version"] == 2
    assert await timeline_types(client, complaint_id, 2) == ["ComplaintRegistered", "ComplaintAcknowledged"]


async def test_auditors_read_but_cannot_act(client: StackClient) -> None:
    complaint_id = await new_complaint(client)
    auditor = bearer(staff_token("audit-1", OrgUnit(), Role.auditor))

    read = await client.http.get(f"{client.complaints_url}/api/v1/complaints/{complaint_id}", headers=auditor)
    act = await client.step(complaint_id, "acknowledge", headers=auditor)

    assert read.status_code == 200
    assert act.status_code == 403


async def test_customer_sees_progress_without_personal_data_and_a_strangers_guesses_never_lock_them_out(
    client: StackClient,
) -> None:
    hall_id = await client.register_hall()
    complaint = (await client.post_complaint(complaint_body(hall_id))).json()
    await client.step(complaint["id"], "acknowledge", {"reason": "called 张三 on 13812345678"})
    url = f"{client.complaints_url}/api/v1/public/complaints/progress"
    # Clients told apart by address, as the ingress forwards it (uvicorn trusts it from a local proxy).
    stranger, customer = ({"X-Forwarded-For": address} for address in ("203.0.113.9", "198.51.100.4"))

    async def ask(digits: str, headers: dict[str, str], number: str = complaint["number"]) -> httpx.Response:
        return await anonymous.http.post(url, json={"number": number, "phone_last_four": digits}, headers=headers)

    async with client.acting_as({}) as anonymous:
        progress = await ask("5678", customer)
        guesses = await asyncio.gather(*(ask(f"{n:04}", stranger) for n in range(15)))
        still = await ask("5678", customer)
        stranger_right = await ask("5678", stranger)
        unknown = await ask("5678", customer, "C20000101-000000")
        too_long = await ask("5678", customer, "C" * 3000)
        in_the_url = await anonymous.http.get(f"{url}?number={complaint['number']}&phone_last_four=5678")

    assert progress.status_code == 200 and complaint["number"].count("-") == 2  # C<day>-<serial>-<random>
    assert [step["step"] for step in progress.json()["steps"]] == ["Registered", "Acknowledged"]
    for personal in ("张三", "13812345678", "charged twice"):
        assert personal not in progress.text
    # The stranger's guesses are judged one at a time: five tried and wrong, the rest refused untried.
    assert sorted(response.status_code for response in guesses) == [404] * 5 + [429] * 10
    assert still.status_code == 200
    assert stranger_right.status_code == 429 and 0 < int(stranger_right.headers["Retry-After"]) <= 901
    assert (unknown.status_code, too_long.status_code, in_the_url.status_code) == (404, 422, 405)


async def test_no_log_or_trace_holds_a_customer_name_or_phone(client: StackClient) -> None:
    """Runs last in this module, after every scenario above has filed complaints for 张三, 13812345678.

    The test stack exports spans to the services' output, so the log files hold both."""
    complaint_id = await new_complaint(client)
    await client.http.get(f"{client.complaints_url}/api/v1/complaints/{complaint_id}")
    await client.wait_for_timeline(complaint_id, 1)
    logs: dict[str, str] = {}

    async def exported() -> bool:  # spans are exported in batches
        logs.update(
            (path.stem, path.read_text(errors="replace"))
            for path in (client.stack.config.data_dir / "logs").glob("*.log")
        )
        return f'"name": "process {COMPLAINTS_EVENTS}"' in logs["projections"]

    assert await eventually(exported)
    assert '"name": "POST /api/v1/complaints"' in logs["complaints"]
    assert f'"name": "send {COMPLAINTS_EVENTS}"' in logs["complaints"]
    for name, text in logs.items():
        assert "13812345678" not in text and "张三" not in text, name


async def test_every_service_serves_metrics_by_route_with_no_ids_or_personal_data(client: StackClient) -> None:
    complaint_id = await new_complaint(client)
    await client.wait_for_timeline(complaint_id, 1)
    await client.http.get(f"{client.projections_url}/api/v1/complaints/{complaint_id}/timeline")

    metrics = {
        name: (await client.http.get(f"{service.url}/metrics")).text for name, service in client.stack.services.items()
    }

    assert 'http_server_requests_total{method="POST",route="/api/v1/complaints",status="201"}' in metrics["complaints"]
    route = 'route="/api/v1/complaints/{complaint_id}/timeline"'
    assert f'http_server_request_duration_seconds_count{{method="GET",{route}}}' in metrics["projections"]
    assert 'relay_published_events_total{relay="complaints-events"}' in metrics["complaints"]
    assert 'consumer_events_total{consumer="projections",outcome="applied"}' in metrics["projections"]
    assert 'consumer_events_total{consumer="escalation",outcome="applied"}' in metrics["escalation"]
    registered = 'complaints_registered_total{category="billing",channel="hotline_10000",priority="normal"}'
    assert registered in metrics["complaints"]
    for name, text in metrics.items():
        assert complaint_id not in text and "13812345678" not in text and "张三" not in text, name
