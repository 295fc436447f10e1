"""Who bears a complaint's points, and a hall's appeal against a finding, end to end under policy 2026-12.

By hand: a hall with nothing recorded scores 100 (every component without data, full marks). One
open complaint costs the resolution rate (none of 1 closed): 70. Checked as network-caused, the
default attribution puts it on the network department: the hall is back at 100, and the
attribution lists it on the network department's line. A finding A1 costs 2 points, 4 once its
order is overdue; the unit above upholding the hall's appeal restores exactly those 4.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.auth import Role
from shared.clock import CHINA_TIME
from shared.organisation import OrgUnit
from tests.integration.harness import StackClient, bearer, complaint_body, staff_token
from tests.integration.test_inspections import inspect, order_step

NOW = datetime(2026, 12, 7, 10, tzinfo=CHINA_TIME)  # a working Monday under policy 2026-12
PERIOD = "2026-12"
PROVINCE, CITY = "安徽", "合肥"
CITY_UNIT = f"group/{PROVINCE}/{CITY}"
CITY_QUALITY = bearer(staff_token("quality-hf", OrgUnit((PROVINCE, CITY)), Role.quality_manager))


def manager_of(hall_id: str) -> dict[str, str]:
    return bearer(staff_token(f"manager-{hall_id}", OrgUnit((PROVINCE, CITY, hall_id)), Role.hall_manager))


@pytest.fixture(scope="module", autouse=True)
def pinned_time(client: StackClient) -> None:
    client.move_clock_to(NOW)


async def score_when(client: StackClient, hall_id: str, expected: float, timeout: float = 60) -> float | None:
    """The hall's score once it is `expected`, or as it is when `timeout` runs out (None: not known yet)."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.http.get(
            f"{client.scoring_url}/api/v1/grades", params={"period": PERIOD, "scope": f"group/{PROVINCE}"}
        )
        assert response.status_code == 200, response.text
        score = next((h["score"] for h in response.json()["halls"] if h["hall_id"] == hall_id), None)
        if score == expected or time.monotonic() > deadline:
            return score
        await asyncio.sleep(0.25)


async def test_a_network_caused_complaint_leaves_the_halls_score_and_lands_on_the_networks_line(
    client: StackClient,
) -> None:
    await client.register_hall(province=PROVINCE, city=CITY, hall_id="AH-01")
    complaint = (await client.post_complaint(complaint_body("AH-01"))).json()["id"]
    assert await score_when(client, "AH-01", 70) == 70

    unknown = {"substantiated": True, "root_cause": "cell site down", "root_cause_class": "network"}
    for bad_unit in ("group/江西", "group/安徽/合肥/NO-SUCH-HALL", "no-such-hall", "group//x"):
        refused = await client.step(complaint, "check", {**unknown, "responsible_unit": bad_unit})
        assert refused.status_code == 422, bad_unit
        assert refused.json()["detail"][0]["loc"] == ["body", "responsible_unit"]
    unclassified = await client.step(
        complaint, "check", {**unknown, "root_cause_class": "weather", "responsible_unit": CITY_UNIT}
    )
    assert unclassified.status_code == 422
    checked = await client.step(complaint, "check", {**unknown, "responsible_unit": CITY_UNIT})
    assert checked.status_code == 200, checked.text

    assert await score_when(client, "AH-01", 100) == 100
    lines = await client.http.get(
        f"{client.scoring_url}/api/v1/attribution", params={"period": PERIOD, "scope": f"group/{PROVINCE}"}
    )
    assert lines.status_code == 200, lines.text
    assert lines.json()["lines"] == [
        {
            "bearer": "department:network",
            "responsible_unit": CITY_UNIT,
            "root_cause_class": "network",
            "complaints": 1,
            "substantiated": 1,
            "halls": ["AH-01"],
        }
    ]


async def test_an_upheld_appeal_restores_exactly_the_findings_overdue_points(client: StackClient) -> None:
    await client.register_hall(province=PROVINCE, city=CITY, hall_id="AH-02")
    manager = manager_of("AH-02")
    created = await inspect(
        client, "AH-02", failed_items=["A1"], findings=[{"item_id": "A1", "description": "nobody greeted"}]
    )
    assert created.status_code == 201, created.text
    [order] = created.json()["rectification_orders"]
    assert await score_when(client, "AH-02", 98) == 98

    client.move_clock_to(NOW + timedelta(days=7))  # past the order's 3 working days, never rectified
    assert await score_when(client, "AH-02", 96) == 96  # overdue: twice the points

    assert (await order_step(client, order, "decide-appeal", CITY_QUALITY, upheld=True)).status_code == 409
    appealed = await order_step(client, order, "appeal", manager, reason="the greeter was on the camera")
    assert appealed.status_code == 200, appealed.text
    assert appealed.json()["appeal"] == "pending"
    assert (await order_step(client, order, "appeal", manager)).status_code == 409
    own_decision = await order_step(client, order, "decide-appeal", manager, upheld=True)
    assert own_decision.status_code == 403  # a hall manager decides no appeal, least of all its own
    decided = await order_step(client, order, "decide-appeal", CITY_QUALITY, upheld=True)
    assert decided.status_code == 200, decided.text
    assert decided.json()["appeal"] == "upheld"

    assert await score_when(client, "AH-02", 100) == 100
    audit = await client.http.get(
        f"{client.scoring_url}/api/v1/halls/AH-02/audit",
        params={"as_of": client.now().isoformat(), "scope": f"group/{PROVINCE}"},
    )
    waived: dict[str, Any] = audit.json()["changes"][-1]
    assert (waived["fact"], waived["source_event_type"]) == ("deduction_waived", "RectificationOrderAppealDecided")
    assert waived["changes"] == [{"component": "deductions", "before": 4.0, "after": 0.0}]

    clocks = await client.http.get(f"{client.escalation_url}/api/v1/rectification-orders/{order}/clocks")
    assert clocks.status_code == 200, clocks.text
    appeal_clock = next(c for c in clocks.json()["clocks"] if c["name"] == "appeal_decision")
    assert appeal_clock["stopped_at"] is not None
