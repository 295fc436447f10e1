"""A hall's life end to end: a level change graded as the policy says, a closure refusing new complaints,
and a closed hall still read."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.integration.harness import StackClient, complaint_body, eventually
from tests.integration.test_escalation import instant, next_working_morning

PROVINCE = "海南"


async def change(client: StackClient, hall_id: str, **body: Any) -> dict[str, Any]:
    response = await client.http.post(
        f"{client.complaints_url}/api/v1/halls/{hall_id}/changes", json={"reason": "for the test", **body}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_a_hall_moved_to_level_four_mid_month_is_not_graded_that_month_and_a_closed_one_is_still_read(
    client: StackClient,
) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start)
    hall_id = await client.register_hall(province=PROVINCE, city="海口")
    period = f"{start.year:04}-{start.month:02}"
    later = start + timedelta(hours=1)  # later in the period: the hall as it ends the period is level 4

    changed = await change(client, hall_id, effective_from=later.isoformat(), level=4)

    assert changed["level"] == 1 and changed["changes"][0]["level"] == 4  # not yet in effect

    async def ungraded() -> bool:
        response = await client.http.get(
            f"{client.scoring_url}/api/v1/grades", params={"period": period, "scope": f"group/{PROVINCE}"}
        )
        halls = {hall["hall_id"]: hall for hall in response.json()["halls"]}
        return bool(halls.get(hall_id, {}).get("ungraded_reason") == "level-4 hall: only levels 1 to 3 are graded")

    assert await eventually(ungraded)

    closed = await change(client, hall_id, effective_from=start.isoformat(), closed=True)
    assert closed["closed"] and instant(closed["closed_from"]) == start
    refused = await client.post_complaint(complaint_body(hall_id))
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "hall_id"], refused.text
    read = await client.http.get(f"{client.complaints_url}/api/v1/halls/{hall_id}")
    before = await client.http.get(
        f"{client.complaints_url}/api/v1/halls/{hall_id}",
        params={"as_at": (start - timedelta(minutes=1)).isoformat()},
    )
    assert read.status_code == 200 and read.json()["closed"]
    assert before.json()["closed"] is False and before.json()["level"] == 1
    again = await client.http.post(
        f"{client.complaints_url}/api/v1/halls/{hall_id}/changes",
        json={"reason": "twice", "effective_from": start.isoformat(), "closed": True},
    )
    assert again.status_code == 409 and "nothing to change" in again.text
