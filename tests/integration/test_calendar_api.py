"""The escalation service's working-time calendar over REST."""

from __future__ import annotations

from services.escalation.policy import load_policies
from tests.integration.harness import StackClient


async def test_deadline_and_working_time_across_national_day(client: StackClient) -> None:
    url = f"{client.stack.services['escalation'].url}/api/v1/calendar"

    due = await client.http.get(f"{url}/deadline", params={"from": "2026-09-30T10:00:00+08:00", "working_days": 5})
    hours = await client.http.get(f"{url}/deadline", params={"from": "2026-09-30T17:00:00+08:00", "working_hours": 2})
    elapsed = await client.http.get(
        f"{url}/working-time", params={"from": "2026-09-30T17:00:00+08:00", "to": "2026-10-08T10:00:00+08:00"}
    )

    assert due.json()["due"] == "2026-10-13T10:00:00+08:00"
    assert hours.json()["due"] == "2026-10-08T10:00:00+08:00"
    assert elapsed.json()["working_seconds"] == 2 * 3600


async def test_unknown_year_and_bad_questions_are_422_naming_the_parameter(client: StackClient) -> None:
    url = f"{client.stack.services['escalation'].url}/api/v1/calendar"

    unknown_year = await client.http.get(
        f"{url}/deadline", params={"from": "2099-03-02T10:00:00+08:00", "working_days": 1}
    )
    both = await client.http.get(
        f"{url}/deadline", params={"from": "2026-09-30T10:00:00+08:00", "working_days": 1, "working_hours": 1}
    )
    naive = await client.http.get(f"{url}/deadline", params={"from": "2026-09-30T10:00:00", "working_days": 1})

    assert unknown_year.status_code == 422
    assert "2099" in unknown_year.json()["detail"][0]["msg"]
    assert both.status_code == 422 and both.json()["detail"][0]["loc"] == ["query", "working_days"]
    assert naive.status_code == 422 and naive.json()["detail"][0]["loc"] == ["query", "from"]


async def test_sla_policies_are_listed_with_their_versions(client: StackClient) -> None:
    response = await client.http.get(f"{client.stack.services['escalation'].url}/api/v1/sla/policies")

    assert response.status_code == 200
    listed = response.json()
    assert [policy["version"] for policy in listed] == [policy.version for policy in load_policies()]
    assert listed[0]["version"] == "2026-01" and listed[0]["warning_thresholds"] == [0.5, 0.8]
    assert (listed[0]["max_pause"], listed[-1]["max_pause"]) == (None, {"working_days": 1, "working_hours": None})
