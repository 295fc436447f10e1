"""Bad input is a 422 naming the field, on every service, never a 500; and what is accepted is never lost.

Each case here was a 500 (or an accepted request that later vanished) found by an outside test run.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.projections.cursors import encode_cursor
from services.scoring.policy import SCORING_POLICY_DIR
from tests.integration.harness import StackClient, complaint_body

FAR_FUTURE = "9999-12-31T23:59:59-14:00"
FAR_PAST = "0001-01-01T00:00:00+14:00"
PERIOD = "2026-11"


def assert_refused(response: httpx.Response, *location: str) -> None:
    """A 422 in the one error shape, naming `location` among its problems."""
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert all(set(problem) == {"loc", "msg", "type"} for problem in problems), problems
    assert list(location) in [problem["loc"] for problem in problems], problems


async def post_raw(client: StackClient, url: str, body: dict[str, Any]) -> httpx.Response:
    """Posts `body` as Python writes JSON by default: NaN and Infinity as bare tokens."""
    return await client.http.post(url, content=json.dumps(body), headers={"content-type": "application/json"})


async def registered_complaint(client: StackClient) -> dict[str, Any]:
    response = await client.post_complaint(complaint_body(await client.register_hall()))
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


def inspection_body(hall_id: str, **overrides: Any) -> dict[str, Any]:
    return {"hall_id": hall_id, "type": "self_check", "failed_items": [], **overrides}


def policy_draft(**overrides: Any) -> dict[str, Any]:
    draft: dict[str, Any] = json.loads((SCORING_POLICY_DIR / "2026-12.json").read_text())
    return {**draft, "version": "draft", **overrides}


# --- NaN and Infinity: the 422 used to echo them back, and could not be written as JSON ---


async def test_nan_as_a_step_reason_is_a_422_naming_the_reason(client: StackClient) -> None:
    complaint = await registered_complaint(client)

    response = await post_raw(
        client, f"{client.complaints_url}/api/v1/complaints/{complaint['id']}/acknowledge", {"reason": float("nan")}
    )

    assert_refused(response, "body", "reason")


async def test_infinite_hall_level_is_a_422_naming_the_level(client: StackClient) -> None:
    body = {"hall_id": "INF-HALL", "name": "n", "province": "广东", "city": "深圳", "ownership": "self_operated"}

    response = await post_raw(client, f"{client.complaints_url}/api/v1/halls", {**body, "level": float("inf")})

    assert_refused(response, "body", "level")


@pytest.mark.parametrize("rating", [float("nan"), float("inf"), float("-inf")])
async def test_non_finite_innovation_rating_is_a_422_naming_it(client: StackClient, rating: float) -> None:
    hall_id = await client.register_hall()

    response = await post_raw(
        client, f"{client.complaints_url}/api/v1/inspections", inspection_body(hall_id, innovation_rating=rating)
    )

    assert_refused(response, "body", "innovation_rating")


async def test_nan_as_the_what_if_policy_version_is_a_422_naming_it(client: StackClient) -> None:
    response = await post_raw(
        client, f"{client.scoring_url}/api/v1/grades/what-if?period={PERIOD}", {"policy_version": float("nan")}
    )

    assert_refused(response, "body", "policy_version")


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), 1e308, -1.0])
async def test_what_if_draft_with_an_absurd_weight_is_a_422_naming_the_weight(
    client: StackClient, weight: float
) -> None:
    draft = policy_draft()
    draft["weights"]["innovation"] = weight

    response = await post_raw(client, f"{client.scoring_url}/api/v1/grades/what-if?period={PERIOD}", {"policy": draft})

    assert_refused(response, "body", "policy", "weights", "innovation")


async def test_what_if_draft_within_the_bounds_is_replayed(client: StackClient) -> None:
    draft = policy_draft()
    draft["weights"]["innovation"] = 30

    response = await client.http.post(
        f"{client.scoring_url}/api/v1/grades/what-if", params={"period": PERIOD}, json={"policy": draft}
    )

    assert response.status_code == 200, response.text
    assert response.json()["what_if_policy_version"] == "draft"


# --- instants at the edge of the range: converting them to UTC or PostgreSQL overflowed ---


@pytest.mark.parametrize("instant", [FAR_FUTURE, FAR_PAST, "1999-12-31T23:59:59+00:00", "2101-01-01T00:00:00+00:00"])
async def test_list_filter_outside_2000_to_2100_is_a_422_naming_it(client: StackClient, instant: str) -> None:
    response = await client.http.get(f"{client.projections_url}/api/v1/complaints", params={"received_from": instant})

    assert_refused(response, "query", "received_from")


async def test_list_cursor_with_an_extreme_instant_is_a_422_naming_the_cursor(client: StackClient) -> None:
    forged = encode_cursor(datetime.fromisoformat(FAR_FUTURE), uuid.uuid4())
    readable = f"{FAR_FUTURE}|{uuid.uuid4()}"  # the form cursors had before they were opaque

    for cursor in (forged, readable):
        response = await client.http.get(f"{client.projections_url}/api/v1/complaints", params={"cursor": cursor})
        assert_refused(response, "query", "cursor")


async def test_a_list_cursor_is_opaque_and_safe_in_a_url_unencoded(client: StackClient) -> None:
    hall_id = await client.register_hall()
    ids = {(await client.post_complaint(complaint_body(hall_id))).json()["id"] for _ in range(2)}
    await client.wait_until_projected(ids)
    url = f"{client.projections_url}/api/v1/complaints"

    cursor = (await client.http.get(url, params={"hall_id": hall_id, "limit": 1})).json()["next_cursor"]
    second = await client.http.get(f"{url}?hall_id={hall_id}&limit=1&cursor={cursor}")  # not URL-encoded

    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor) and "|" not in cursor
    assert second.status_code == 200, second.text


async def test_list_cursor_returned_by_the_list_still_pages(client: StackClient) -> None:
    hall_id = await client.register_hall()
    ids = {(await client.post_complaint(complaint_body(hall_id))).json()["id"] for _ in range(2)}
    await client.wait_until_projected(ids)
    url = f"{client.projections_url}/api/v1/complaints"

    first = (await client.http.get(url, params={"hall_id": hall_id, "limit": 1})).json()
    second = await client.http.get(url, params={"hall_id": hall_id, "limit": 1, "cursor": first["next_cursor"]})

    assert second.status_code == 200, second.text
    assert {first["items"][0]["id"], second.json()["items"][0]["id"]} == ids


@pytest.mark.parametrize("instant", [FAR_FUTURE, FAR_PAST])
async def test_grades_as_of_an_extreme_instant_is_a_422_naming_as_of(client: StackClient, instant: str) -> None:
    response = await client.http.get(f"{client.scoring_url}/api/v1/grades", params={"period": PERIOD, "as_of": instant})

    assert_refused(response, "query", "as_of")


async def test_audit_as_of_an_extreme_instant_is_a_422_naming_as_of(client: StackClient) -> None:
    hall_id = await client.register_hall()

    response = await client.http.get(f"{client.scoring_url}/api/v1/halls/{hall_id}/audit", params={"as_of": FAR_PAST})

    assert_refused(response, "query", "as_of")


@pytest.mark.parametrize(
    ("start", "end", "bad"), [(FAR_PAST, FAR_FUTURE, "from"), ("2026-09-30T10:00:00+08:00", FAR_FUTURE, "to")]
)
async def test_calendar_working_time_in_year_1_or_9999_is_a_422_naming_it(
    client: StackClient, start: str, end: str, bad: str
) -> None:
    response = await client.http.get(
        f"{client.escalation_url}/api/v1/calendar/working-time", params={"from": start, "to": end}
    )

    assert_refused(response, "query", bad)


async def test_calendar_deadline_from_year_9999_is_a_422_naming_from(client: StackClient) -> None:
    response = await client.http.get(
        f"{client.escalation_url}/api/v1/calendar/deadline", params={"from": FAR_FUTURE, "working_days": 1}
    )

    assert_refused(response, "query", "from")


async def test_rectify_deadline_in_year_9999_is_a_422_naming_it(client: StackClient) -> None:
    complaint = await registered_complaint(client)
    body = {"action": "refund", "owner": "SZ-BILLING", "deadline": FAR_FUTURE}

    response = await client.step(complaint["id"], "rectify", body)

    assert_refused(response, "body", "deadline")


# --- NUL in a path or query parameter: PostgreSQL refused the text, a 500 ---


async def test_nul_in_the_public_progress_number_is_a_422_naming_it(client: StackClient) -> None:
    response = await client.http.post(
        f"{client.complaints_url}/api/v1/public/complaints/progress",
        json={"number": "C2026\u0000", "phone_last_four": "5678"},
    )

    assert_refused(response, "body", "number")


async def test_nul_in_a_scorecard_hall_id_is_a_422_naming_it(client: StackClient) -> None:
    response = await client.http.get(
        f"{client.projections_url}/api/v1/halls/HALL%00/scorecard", params={"period": PERIOD}
    )

    assert_refused(response, "path", "hall_id")


@pytest.mark.parametrize("name", ["hall_id", "category"])
async def test_nul_in_a_list_filter_is_a_422_naming_it(client: StackClient, name: str) -> None:
    response = await client.http.get(f"{client.projections_url}/api/v1/complaints", params={name: "x\x00"})

    assert_refused(response, "query", name)


async def test_control_character_in_the_calendar_unit_is_a_422_naming_it(client: StackClient) -> None:
    response = await client.http.get(
        f"{client.escalation_url}/api/v1/calendar/deadline",
        params={"from": "2026-09-30T10:00:00+08:00", "working_days": 1, "unit": "group/广东\x00"},
    )

    assert_refused(response, "query", "unit")


# --- checklist_version was read as a file path ---


@pytest.mark.parametrize("version", ["../checklists/2026-01", "x" * 300, "2026-01/../2026-01", "2099-01"])
async def test_unknown_checklist_version_is_a_422_naming_it(client: StackClient, version: str) -> None:
    hall_id = await client.register_hall()

    response = await client.http.post(
        f"{client.complaints_url}/api/v1/inspections", json=inspection_body(hall_id, checklist_version=version)
    )

    assert_refused(response, "body", "checklist_version")


async def test_known_checklist_version_is_used(client: StackClient) -> None:
    hall_id = await client.register_hall()

    response = await client.http.post(
        f"{client.complaints_url}/api/v1/inspections", json=inspection_body(hall_id, checklist_version="2026-01")
    )

    assert response.status_code == 201, response.text
    assert response.json()["checklist_version"] == "2026-01"


# --- what the API accepts reaches the read models; what it refuses appears nowhere ---

UNUSUAL_TEXTS = [
    "客户投诉：重复扣费，已于当日退款",
    "called back 😀👍🏽, family 👨\u200d👩\u200d👧 on the line",
    "first line\nsecond line\n\tindented",
    "typed on Windows\r\nsecond line",
    "right to left: مرحبا بكم",
    "quotes ' \" a backslash \\ and \\u0000 written out",
    "zero\u200bwidth, line\u2028separator, e\u0301 combined",
    "长" * 1000,
]
# Any text but control characters (tab, line feed and carriage return allowed) and lone surrogates.
ALLOWED_TEXT = st.text(
    st.characters(exclude_categories=("Cc", "Cs"), include_characters="\t\n\r"), min_size=1, max_size=40
)
FORBIDDEN_CHARACTERS = ["\x00", "\x01", "\x08", "\x1b", "\x7f", "\x85", "\x9f", "\ud800", "\udfff"]
EXAMPLES = settings(max_examples=25, deadline=None, database=None, derandomize=True)


def with_forbidden(text: str, forbidden: str, at: int) -> str:
    return f"<{text[:at]}{forbidden}{text[at:]}>"


def send_texts(
    client: StackClient, url: str, body_of: Callable[[str], dict[str, Any]], field: str
) -> tuple[list[str], list[str]]:
    """Posts the unusual texts and drawn ones (accepted: 2xx), and each forbidden character and drawn texts
    with one in them (refused: 422 naming `field`); returns both lists. Synchronous: Hypothesis drives it
    in a thread."""
    accepted: list[str] = []
    refused: list[str] = []
    with httpx.Client(headers=client.http.headers, timeout=10) as http:

        def accepts(text: str) -> None:
            response = http.post(url, json=body_of(text))
            assert response.is_success, response.text
            accepted.append(text)

        @EXAMPLES
        @given(text=ALLOWED_TEXT)
        def drawn_text_is_accepted(text: str) -> None:
            accepts(f"<{text}>")  # brackets: what is stored is what was sent, nothing to strip

        def refuses(text: str) -> None:
            # Escaped JSON (\\u0000, \\ud800), as a JSON client sends it: a lone surrogate has no UTF-8.
            response = http.post(url, content=json.dumps(body_of(text)), headers={"content-type": "application/json"})
            assert_refused(response, "body", field)
            refused.append(text)

        @EXAMPLES
        @given(text=ALLOWED_TEXT, forbidden=st.sampled_from(FORBIDDEN_CHARACTERS), at=st.integers(0, 40))
        def text_with_a_control_character_is_refused(text: str, forbidden: str, at: int) -> None:
            refuses(with_forbidden(text, forbidden, at))

        for text in UNUSUAL_TEXTS:
            accepts(text)
        for forbidden in FORBIDDEN_CHARACTERS:
            refuses(f"<before{forbidden}after>")
        drawn_text_is_accepted()
        text_with_a_control_character_is_refused()
    return accepted, refused


async def test_every_accepted_step_reaches_the_timeline_and_refused_ones_appear_nowhere(client: StackClient) -> None:
    complaint = await registered_complaint(client)
    check = {
        "substantiated": True,
        "root_cause": "重复扣费 😀",
        "root_cause_class": "billing_system",
        "responsible_unit": "group",
    }
    assert (await client.step(complaint["id"], "check", check)).status_code == 200
    url = f"{client.complaints_url}/api/v1/complaints/{complaint['id']}/contact"

    accepted, refused = await asyncio.to_thread(
        send_texts, client, url, lambda reason: {"reason": reason, "outcome": "reached"}, "reason"
    )
    await client.wait_until_relayed("complaints")
    await client.wait_until_consumed("projections")

    timeline = await client.http.get(f"{client.projections_url}/api/v1/complaints/{complaint['id']}/timeline")
    reasons = [
        event["details"]["reason"] for event in timeline.json()["events"] if event["type"] == "CustomerContacted"
    ]
    assert reasons == accepted
    assert not set(refused) & set(reasons)
    assert complaint["id"] not in json.dumps(await client.dead_letters())


async def test_every_accepted_hall_is_graded_and_refused_ones_appear_nowhere(client: StackClient) -> None:
    province = f"省-{uuid.uuid4().hex[:8]}"
    registered: list[tuple[str, str]] = []  # (name, hall id) of every hall posted

    def hall_body(name: str) -> dict[str, Any]:
        registered.append((name[:200], f"H-{uuid.uuid4().hex[:12]}"))  # a name is at most 200 characters
        hall_id = registered[-1][1]
        return {
            "hall_id": hall_id,
            "name": name[:200],
            "province": province,
            "city": "深圳",
            "level": 1,
            "ownership": "self_operated",
        }

    accepted, refused = await asyncio.to_thread(
        send_texts, client, f"{client.complaints_url}/api/v1/halls", hall_body, "name"
    )
    accepted_ids = {hall_id for name, hall_id in registered if name in {text[:200] for text in accepted}}
    refused_ids = {hall_id for name, hall_id in registered if name in {text[:200] for text in refused}}
    await client.wait_until_relayed("complaints")
    await client.wait_until_consumed("projections", "scoring")

    grades = await client.http.get(
        f"{client.scoring_url}/api/v1/grades", params={"period": PERIOD, "scope": f"group/{province}"}
    )
    assert grades.status_code == 200, grades.text
    assert {hall["hall_id"] for hall in grades.json()["halls"]} == accepted_ids
    stored = await client.database.fetch("SELECT hall_id, name FROM projections.halls WHERE province = $1", province)
    assert {(row["name"], row["hall_id"]) for row in stored} == {
        (name, hall_id) for name, hall_id in registered if hall_id in accepted_ids
    }
    for hall_id in refused_ids:
        hall = await client.http.get(f"{client.complaints_url}/api/v1/halls/{hall_id}")
        assert hall.status_code == 404, hall.text
    assert province not in json.dumps(await client.dead_letters(), ensure_ascii=False)
