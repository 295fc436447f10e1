"""A whole evaluation campaign over 40 halls of one province, end to end; the expectations worked out
by hand below, the results register against a golden CSV.

Policy 2026-12. Two cities of 江苏, twenty halls each: per city one hall at 97 (one 3-point finding),
five at 92 (findings A1, A2, B1: 8 points), nine at 85 (B1, C2, D1, D2, E3: 15 points) and five with
nothing recorded, so not assessed. 30 halls are assessed: 1 excellent place (5%) and 6 good (20%).
The two at 97 are equal on every tie-break key, so tied at the excellent boundary: both drop to good
until the campaign decides. The ten at 92 are tied at the good boundary and drop to meets.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from shared.auth import Role
from shared.clock import CHINA_TIME
from shared.organisation import OrgUnit
from shared.topics import SCORING_EVENTS
from tests.dashboard_queries import dashboard_queries
from tests.integration.harness import StackClient, bearer, complaint_body, eventually, staff_token
from tests.integration.test_inspections import inspect, order_step

NOW = datetime(2026, 12, 14, 10, tzinfo=CHINA_TIME)  # a working Monday under policy 2026-12
PERIOD = "2026-12"
PROVINCE = "江苏"
SCOPE = f"group/{PROVINCE}"
CITIES = {"NJ": "南京", "SZ": "苏州"}
GOLDEN_REGISTER = Path(__file__).parent / "golden" / "campaign-register.csv"
GOLDEN_REPORT = Path(__file__).parent / "golden" / "monthly-report-2026-12.csv"
FINDINGS_92 = ["A1", "A2", "B1"]
FINDINGS_85 = ["B1", "C2", "D1", "D2", "E3"]


def hall(city: str, n: int) -> str:
    return f"{city}-{n:02}"


def expected_score(n: int) -> float:
    return 97.0 if n == 1 else 92.0 if n <= 6 else 85.0 if n <= 15 else 100.0


def quality_manager(unit: str) -> dict[str, str]:
    return bearer(staff_token(f"qm-{unit}", OrgUnit.parse(unit), Role.quality_manager))


def hall_manager(city: str, n: int) -> dict[str, str]:
    unit = OrgUnit((PROVINCE, CITIES[city], hall(city, n)))
    return bearer(staff_token(f"manager-{hall(city, n)}", unit, Role.hall_manager))


GROUP, JIANGSU = quality_manager("group"), quality_manager(SCOPE)
NANJING, SUZHOU = quality_manager(f"{SCOPE}/南京"), quality_manager(f"{SCOPE}/苏州")
state: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def pinned_time(client: StackClient) -> None:
    client.move_clock_to(NOW)


async def campaign_step(client: StackClient, action: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
    return await client.http.post(
        f"{client.scoring_url}/api/v1/campaigns/{state['campaign']}/{action}",
        json={"reason": f"{action} after the December review", **body},
        headers=headers,
    )


async def grades(client: StackClient) -> dict[str, Any]:
    response = await client.http.get(f"{client.scoring_url}/api/v1/grades", params={"period": PERIOD, "scope": SCOPE})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_forty_halls_are_graded_with_the_ties_flagged_and_no_hall_without_evidence(client: StackClient) -> None:
    for city, name in CITIES.items():
        for n in range(1, 21):
            await client.register_hall(level=1 + n % 3, province=PROVINCE, city=name, hall_id=hall(city, n))
            failed = ["E1" if city == "NJ" else "C2"] if n == 1 else FINDINGS_92 if n <= 6 else FINDINGS_85
            if n <= 15:
                findings = [{"item_id": item, "description": f"{item} failed"} for item in failed]
                response = await inspect(client, hall(city, n), failed_items=failed, findings=findings)
                assert response.status_code == 201, response.text
                state.setdefault("orders", {})[hall(city, n)] = response.json()["rectification_orders"]
    # NJ-01 also closes a complaint, its customer satisfied: still 97, still equal on every key.
    registered = await client.post_complaint(complaint_body(hall("NJ", 1)))
    state["complaint"] = registered.json()["id"]
    for action, step in (("resolve-on-spot", {}), ("feedback", {"satisfaction": "satisfied"}), ("close", {})):
        assert (await client.step(state["complaint"], action, step)).status_code == 200, action

    expected = {hall(city, n): expected_score(n) for city in CITIES for n in range(1, 21)}
    deadline = time.monotonic() + 90
    while True:
        body = await grades(client)
        halls = {h["hall_id"]: h for h in body["halls"]}
        settled = {h: x["score"] for h, x in halls.items()} == expected and body["graded_halls"] == 30
        if settled or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert {h: x["score"] for h, x in halls.items()} == expected
    assert (body["graded_halls"], body["not_assessed_halls"], body["excellent_places"], body["good_places"]) == (
        30,
        10,
        1,
        6,
    )
    assert {h for h, x in halls.items() if x["status"] == "not_assessed"} == {
        hall(city, n) for city in CITIES for n in range(16, 21)
    }
    assert all(x["grade"] is None and x["rank"] is None for x in halls.values() if x["status"] == "not_assessed")
    tied = {h for h, x in halls.items() if x["tied_at_boundary"]}
    assert tied == {hall(city, n) for city in CITIES for n in range(1, 7)}
    assert {halls[hall(city, 1)]["grade"] for city in CITIES} == {"good"}  # the tie drops until decided
    assert {halls[hall(city, n)]["grade"] for city in CITIES for n in range(2, 16)} == {"meets"}


async def test_the_grades_table_holds_the_group_wide_grades_for_the_dashboards(client: StackClient) -> None:
    """Ranked in the whole group: with this module's 40 halls alone, the same as in the province. Both are
    read again until they agree: facts that move no score (the complaint's close) may still be arriving."""

    async def served() -> dict[str, tuple[Any, ...]]:
        return {
            h["hall_id"]: (h["status"], h["score"], h["grade"], h["tied_at_boundary"])
            for h in (await grades(client))["halls"]
        }

    async def stored() -> dict[str, tuple[Any, ...]]:
        rows = await client.database.fetch(
            "SELECT hall_id, status, score, grade, tied_at_boundary FROM scoring.hall_grades WHERE period = $1",
            PERIOD,
        )
        return {row["hall_id"]: tuple(row.values())[1:] for row in rows}

    last: list[dict[str, tuple[Any, ...]]] = []

    async def settled() -> bool:
        last[:] = [await served(), await stored()]
        return len(last[0]) == 40 and last[0] == last[1]

    if not await eventually(settled, timeout=30):
        expected, now = last
        differing = {
            h: (expected.get(h), now.get(h)) for h in expected.keys() | now.keys() if expected.get(h) != now.get(h)
        }
        pytest.fail(f"(served, stored) per differing hall: {differing}")


async def test_every_grades_dashboard_panel_finds_its_rows_in_the_read_models(client: StackClient) -> None:
    """Ties and halls not assessed are there already; a pending appeal is made here."""
    order = state["orders"]["NJ-02"][0]
    appealed = await order_step(client, order, "appeal", hall_manager("NJ", 2), reason="the sign was up")
    assert appealed.status_code == 200, appealed.text
    assert len(await client.wait_for_timeline(order, 2, kind="rectification-orders")) == 2

    queries = dashboard_queries("rawSql", chosen={"period": PERIOD})
    assert {query.dashboard for query in queries} == {"Grades"} and len(queries) == 6
    for query in queries:
        rows = await client.database.fetch(query.expr)
        assert rows, query.panel
    movement = await client.database.fetch(next(q.expr for q in queries if q.panel == "Grade movement by city"))
    assert {(row["city"], row["newly_graded"]) for row in movement} == {("南京", 15), ("苏州", 15)}


async def test_the_monthly_report_matches_the_golden_file_in_every_format_and_is_published(
    client: StackClient,
) -> None:
    """Every hall inspected once by a mystery shopper, NJ-01's complaint answered on the spot and closed
    satisfied by staff of another unit; November had no evidence, so every grade is new."""
    await client.wait_until_scored()
    url = f"{client.scoring_url}/api/v1/reports/monthly"
    params = {"period": PERIOD, "scope": SCOPE}
    golden = GOLDEN_REPORT.read_text(encoding="utf-8")
    as_csv = await client.http.get(url, params={**params, "format": "csv"})
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.text == golden

    as_xlsx = await client.http.get(url, params={**params, "format": "xlsx"})
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content))["Report"]
    cells = [[_comparable(value) for value in row] for row in sheet.iter_rows(values_only=True)]
    assert cells == [[_comparable(value) for value in row] for row in csv.reader(io.StringIO(golden))]

    report = (await client.http.get(url, params=params)).json()
    nanjing = report["cities"][0]
    assert (nanjing["city"], nanjing["first_responses_on_time"], nanjing["on_time_share"]) == ("南京", 1, 1.0)
    assert report["on_time_target"] == 1.0 and report["attribution"] == []

    published = await client.http.post(url, json={**params, "reason": "December 通报"}, headers=JIANGSU)
    assert published.status_code == 201, published.text
    assert (published.json()["edition"], published.json()["report"]) == (1, report)
    kept = await client.http.get(f"{url}/published", params={**params, "format": "csv"})
    assert kept.text == golden
    await client.wait_until_relayed("scoring")
    [event] = [
        record for record in await client.records_on(SCORING_EVENTS) if record["event_type"] == "MonthlyReportPublished"
    ]
    assert event["data"]["digest"] == published.json()["digest"] and event["data"]["halls"] == 40


def _comparable(cell: object) -> object:
    """A spreadsheet keeps 1.0 as the number 1: numbers compare as numbers, the rest as text."""
    text = "" if cell is None else str(cell)
    try:
        return float(text)
    except ValueError:
        return text


async def test_a_campaign_runs_its_steps_in_order_within_the_margins(client: StackClient) -> None:
    url = f"{client.scoring_url}/api/v1/campaigns"
    opening = {"period": PERIOD, "scope": SCOPE, "reason": "December evaluation"}
    assert (await client.http.post(url, json=opening, headers=NANJING)).status_code == 403  # below its scope
    opened = await client.http.post(url, json=opening, headers=JIANGSU)
    assert opened.status_code == 201, opened.text
    state["campaign"] = opened.json()["id"]
    assert (opened.json()["stage"], len(opened.json()["halls"])) == ("self_assessment", 40)
    assert (await client.http.post(url, json=opening, headers=JIANGSU)).status_code == 409

    early = await campaign_step(client, "group-certification", GROUP, {"excellent": []})
    assert early.status_code == 409 and "must review first" in early.text
    claimed = await campaign_step(
        client, "self-assessments", hall_manager("NJ", 1), {"hall_id": "NJ-01", "claimed_grade": "excellent"}
    )
    assert claimed.status_code == 200, claimed.text
    not_own = await campaign_step(
        client, "self-assessments", hall_manager("NJ", 1), {"hall_id": "NJ-02", "claimed_grade": "excellent"}
    )
    assert not_own.status_code == 403
    wrong_city = await campaign_step(
        client, "city-certifications", NANJING, {"city": f"{SCOPE}/苏州", "meets": [], "nominated": []}
    )
    assert wrong_city.status_code == 403
    unassessed = await campaign_step(
        client, "city-certifications", NANJING, {"city": f"{SCOPE}/南京", "meets": ["NJ-16"], "nominated": []}
    )
    assert unassessed.status_code == 422
    assert unassessed.json()["detail"][0]["loc"] == ["body", "meets", 0]

    # Each city: the hall at 97 and its five at 92 nominated; 南京 leaves NJ-15 out (below the standard).
    for city, headers in (("NJ", NANJING), ("SZ", SUZHOU)):
        last_meeting = 14 if city == "NJ" else 15
        certified = await campaign_step(
            client,
            "city-certifications",
            headers,
            {
                "city": f"{SCOPE}/{CITIES[city]}",
                "meets": [hall(city, n) for n in range(7, last_meeting + 1)],
                "nominated": [hall(city, n) for n in range(1, 7)],
            },
        )
        assert certified.status_code == 200, certified.text
    assert certified.json()["stage"] == "awaiting_provinces"
    late = await campaign_step(
        client, "self-assessments", hall_manager("SZ", 6), {"hall_id": "SZ-06", "claimed_grade": "good"}
    )
    assert late.status_code == 409

    # 12 nominees: the province may certify at most 11 of them (差额).
    put_forward = ["NJ-01", "SZ-01", "NJ-02", "SZ-02", "NJ-03", "SZ-03"]
    good = ["NJ-04", "SZ-04", "NJ-05", "SZ-05", "NJ-06"]
    all_of_them = await campaign_step(
        client, "province-reviews", JIANGSU, {"province": SCOPE, "good": [*good, "SZ-06"], "nominated": put_forward}
    )
    assert all_of_them.status_code == 422
    assert "at most 11 of 12" in all_of_them.json()["detail"][0]["msg"]
    reviewed = await campaign_step(
        client, "province-reviews", JIANGSU, {"province": SCOPE, "good": good, "nominated": put_forward}
    )
    assert reviewed.status_code == 200, reviewed.text

    # Six nominees for excellent: at most 4 (80%); the tie at 97 is decided here, both certified.
    five = await campaign_step(client, "group-certification", GROUP, {"excellent": put_forward[:5]})
    assert five.status_code == 422 and "at most 4 of 6, not 5" in five.json()["detail"][0]["msg"]
    four = await campaign_step(client, "group-certification", GROUP, {"excellent": put_forward[:4]})
    assert four.status_code == 200, four.text
    assert (await campaign_step(client, "close", NANJING, {})).status_code == 403
    closed = await campaign_step(client, "close", JIANGSU, {})
    assert closed.status_code == 200, closed.text
    assert [step["step"] for step in closed.json()["steps"]] == [
        "opened",
        "self_assessed",
        "city_certified",
        "city_certified",
        "province_reviewed",
        "group_certified",
        "closed",
    ]
    assert all(step["actor"] and step["reason"] and step["at"] for step in closed.json()["steps"])
    assert (await campaign_step(client, "close", JIANGSU, {})).status_code == 409


async def register_csv(client: StackClient, headers: dict[str, str] | None = None) -> str:
    response = await client.http.get(
        f"{client.scoring_url}/api/v1/campaigns/{state['campaign']}/results",
        params={"format": "csv"},
        headers=headers or {},
    )
    assert response.status_code == 200, response.text
    return response.text


async def test_the_results_register_matches_the_golden_file(client: StackClient) -> None:
    assert await register_csv(client) == GOLDEN_REGISTER.read_text(encoding="utf-8")
    register = await client.http.get(f"{client.scoring_url}/api/v1/campaigns/{state['campaign']}/results")
    rows = {row["hall_id"]: row for row in register.json()["halls"]}
    assert rows["NJ-02"]["components"] == {
        "response_timeliness": 20,
        "resolution_rate": 30,
        "satisfaction": 20,
        "handling_efficiency": 15,
        "innovation": 15,
    }
    own = await register_csv(client, hall_manager("SZ", 3))
    assert own.splitlines()[1:] == [
        line for line in GOLDEN_REGISTER.read_text().splitlines() if line.startswith("SZ-03,")
    ]


async def test_an_event_after_the_close_is_an_adjustment_and_changes_no_certified_grade(client: StackClient) -> None:
    reopened = await client.step(state["complaint"], "reopen", {})
    assert reopened.status_code == 200, reopened.text
    url = f"{client.scoring_url}/api/v1/campaigns/{state['campaign']}"
    deadline = time.monotonic() + 60
    while True:
        adjustments = (await client.http.get(url)).json()["adjustments"]
        if adjustments or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert {a["hall_id"] for a in adjustments} == {"NJ-01"}
    live = {h["hall_id"]: h for h in (await grades(client))["halls"]}
    assert adjustments[-1]["score_before"] == 97 and live["NJ-01"]["score"] == adjustments[-1]["score"] < 97
    assert await register_csv(client) == GOLDEN_REGISTER.read_text(encoding="utf-8")
