"""The customer's satisfaction survey end to end: the link comes back with the step that records the result,
the customer answers it once without credentials, and only the customer's voice (or another unit's) moves
the hall's score, never the graded hall's own verdict. Expected values worked out by hand below.

Policy 2026-01 (in force at the pinned time) counts satisfaction from `customer` and `other_unit`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.auth import Role
from shared.clock import CHINA_TIME, period_of
from shared.organisation import OrgUnit
from tests.integration.harness import StackClient, bearer, complaint_body, staff_token

NOW = datetime(2026, 11, 16, 10, tzinfo=CHINA_TIME)  # a working Monday, policy 2026-01 in force
PERIOD = period_of(NOW)
HALL = OrgUnit(("江苏", "无锡", "JS-WX-01"))
MANAGER = bearer(staff_token("manager-wx", HALL, Role.hall_manager))


@pytest.fixture(scope="module", autouse=True)
async def hall(client: StackClient) -> None:
    client.move_clock_to(NOW)
    await client.register_hall(province="江苏", city="无锡", hall_id="JS-WX-01")


async def resolved_with_survey(client: StackClient) -> tuple[str, dict[str, Any]]:
    complaint = await client.post_complaint(complaint_body("JS-WX-01"))
    assert complaint.status_code == 201, complaint.text
    complaint_id = complaint.json()["id"]
    resolved = await client.step(complaint_id, "resolve-on-spot", {}, headers=MANAGER)
    assert resolved.status_code == 200, resolved.text
    survey: dict[str, Any] = resolved.json()["survey"]
    return complaint_id, survey


async def answer(client: StackClient, path: str, satisfaction: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10, headers=headers) as customer:  # no staff credentials
        return await customer.post(f"{client.complaints_url}{path}", json={"satisfaction": satisfaction})


async def satisfaction_component(client: StackClient) -> float:
    await client.wait_until_scored()
    card = await client.http.get(f"{client.projections_url}/api/v1/halls/JS-WX-01/scorecard", params={"period": PERIOD})
    assert card.status_code == 200, card.text
    value: float = card.json()["components"]["satisfaction"]
    return value


async def test_only_the_customers_answer_moves_the_score_and_a_survey_is_answered_once(client: StackClient) -> None:
    complaint_id, survey = await resolved_with_survey(client)
    assert survey["path"] == f"/api/v1/public/surveys/{survey['token']}"
    own = await client.step(complaint_id, "feedback", {"satisfaction": "unsatisfied"}, headers=MANAGER)
    assert own.status_code == 200, own.text
    # The hall's own verdict is not counted: satisfaction has no data it accepts, so full marks (20).
    assert await satisfaction_component(client) == 20

    staff = MANAGER["Authorization"]
    with_staff_token = await answer(client, survey["path"], "basically_satisfied", authorization=staff)
    answered = await answer(client, survey["path"], "basically_satisfied")
    again = await answer(client, survey["path"], "satisfied")

    assert with_staff_token.status_code == 403, with_staff_token.text
    assert answered.status_code == 200, answered.text
    assert again.status_code == 409, again.text
    assert await satisfaction_component(client) == 20 * 0.8  # the customer's alone: basically satisfied
    timeline = await client.wait_for_timeline(complaint_id, 4)
    assert [e["details"].get("source") for e in timeline if e["type"] == "FeedbackReceived"] == [
        "graded_hall",
        "customer",
    ]


async def test_a_survey_answered_after_it_expired_is_gone_and_a_forged_one_is_not_found(client: StackClient) -> None:
    _, survey = await resolved_with_survey(client)
    forged = await answer(client, survey["path"][:-3] + "xyz", "satisfied")

    client.move_clock_to(datetime.fromisoformat(survey["expires_at"]) + timedelta(seconds=1))
    expired = await answer(client, survey["path"], "satisfied")

    assert (forged.status_code, forged.json()["detail"][0]["loc"]) == (404, ["path", "token"])
    assert (expired.status_code, expired.json()["detail"][0]["loc"]) == (410, ["path", "token"])
