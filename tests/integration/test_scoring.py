"""Scores and grades end to end: 40 halls over one month, expected results worked out by hand below.

Default policy: response 20, resolution 30, satisfaction 20, efficiency 15, innovation 15 (the 40
halls' inspections rate no innovation, so it is full), full marks without data, a finding costs its
checklist points (A1 2, B1 4, E1 3). Every hall but one is inspected once, the evidence a grade needs;
the one with nothing recorded is not assessed. 36 halls are graded: 1 excellent place (5%), 7 good (20%).
The stack's clock is pinned to a working Monday of November 2026 (policy 2026-01 in force) before
anything is registered, so no expectation depends on the day the tests run.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.scoring.policy import SCORING_POLICY_DIR, months_of
from shared.auth import Role
from shared.clock import CHINA_TIME, period_of
from shared.organisation import OrgUnit
from shared.streaming import wait_until_caught_up
from shared.topics import ESCALATION_EVENTS
from tests.integration.harness import StackClient, bearer, complaint_body, staff_token
from tests.integration.test_inspections import inspect

PROVINCE = "浙江"
SCOPE = f"group/{PROVINCE}"
NOW = datetime(2026, 11, 16, 10, tzinfo=CHINA_TIME)  # a working Monday, where policy 2026-01 is in force
PERIOD = period_of(NOW)  # complaints are received at the stack's now
INSPECTOR = bearer(staff_token("inspector-3", OrgUnit(), Role.inspector))

# Each profile: what happens in the hall this month, and the score it earns by the policy.
PROFILES: dict[str, tuple[list[str], list[str] | None, float]] = {
    # name: (complaint outcomes, failed checklist items or None if never inspected, expected score)
    "perfect": (["closed:satisfied"], [], 20 + 30 + 20 + 15 + 15),  # 100
    "find_A1": ([], ["A1"], 100 - 2),
    "find_E1": ([], ["E1"], 100 - 3),
    "basically": (["closed:basically_satisfied"], [], 20 + 30 + 20 * 0.8 + 15 + 15),  # 96
    "find_A1_E1": ([], ["A1", "E1"], 100 - 2 - 3),
    "find_B1_E1": ([], ["B1", "E1"], 100 - 4 - 3),  # 93
    "find_all": ([], ["A1", "B1", "E1"], 100 - 2 - 4 - 3),  # 91
    "two_of_three": (["closed:satisfied", "closed:satisfied", "on_spot"], [], 20 + 30 * 2 / 3 + 20 + 15 + 15),  # 90
    "half_closed": (["closed:satisfied", "on_spot"], [], 20 + 15 + 20 + 15 + 15),  # 85
    "open": (["registered"], [], 20 + 0 + 20 + 15 + 15),  # 70: response undecided, nothing resolved
    "unsatisfied": (["feedback:unsatisfied"], [], 20 + 0 + 0 + 15 + 15),  # 50
    "unknown": ([], None, 100),  # full marks for want of data, but no evidence
}
# (hall, profile, level, ownership, expected grade, dropped by the quota)
HALLS: list[tuple[str, str, int, str, str | None, bool]] = [
    ("ZJ-01", "perfect", 1, "self_operated", "excellent", False),
    ("ZJ-02", "find_A1", 1, "self_operated", "good", True),  # 98: over the single excellent place
    ("ZJ-03", "find_E1", 2, "self_operated", "good", True),
    ("ZJ-04", "basically", 2, "self_operated", "good", True),
    ("ZJ-05", "basically", 3, "self_operated", "good", True),
    ("ZJ-06", "find_A1_E1", 3, "self_operated", "good", True),  # good place 5 of 7
    # Three at 93 would take good places 6, 7 and 8: the tie straddles the quota, so all three drop.
    ("ZJ-07", "find_B1_E1", 1, "self_operated", "meets", True),
    ("ZJ-08", "find_B1_E1", 2, "self_operated", "meets", True),
    ("ZJ-09", "find_B1_E1", 3, "self_operated", "meets", True),
    ("ZJ-10", "find_all", 1, "self_operated", "meets", True),
    *[(f"ZJ-{n}", "two_of_three", 2, "self_operated", "meets", True) for n in (11, 12, 13)],
    *[(f"ZJ-{n}", "half_closed", 1 + n % 3, "self_operated", "meets", False) for n in range(14, 24)],
    *[(f"ZJ-{n}", "open", 1 + n % 3, "self_operated", "below", False) for n in range(24, 30)],
    *[(f"ZJ-{n}", "unsatisfied", 1 + n % 3, "self_operated", "below", False) for n in range(30, 37)],
    ("ZJ-L4-1", "perfect", 4, "self_operated", None, False),
    ("ZJ-L4-2", "open", 4, "self_operated", None, False),
    ("ZJ-P-1", "perfect", 1, "partner", None, False),
    ("ZJ-P-2", "find_all", 2, "partner", None, False),
    ("ZJ-U-1", "unknown", 1, "self_operated", None, False),
]


@pytest.fixture(scope="module", autouse=True)
def pinned_time(client: StackClient) -> None:
    """Before anything is registered; the stack's time runs on from there."""
    client.move_clock_to(NOW)


async def play(client: StackClient, hall_id: str, profile: str) -> None:
    outcomes, failed_items, _ = PROFILES[profile]
    for outcome in outcomes:
        response = await client.post_complaint(complaint_body(hall_id))
        assert response.status_code == 201, response.text
        complaint_id = response.json()["id"]
        kind, _, satisfaction = outcome.partition(":")
        walks: dict[str, list[tuple[str, dict[str, Any]]]] = {
            "registered": [],
            "on_spot": [("resolve-on-spot", {})],
            "closed": [("resolve-on-spot", {}), ("feedback", {"satisfaction": satisfaction}), ("close", {})],
            "feedback": [("resolve-on-spot", {}), ("feedback", {"satisfaction": satisfaction})],
        }
        for action, body in walks[kind]:
            assert (await client.step(complaint_id, action, body)).status_code == 200, action
    if failed_items is not None:
        findings = [{"item_id": item, "description": f"{item} failed"} for item in failed_items]
        response = await inspect(client, hall_id, failed_items=failed_items, findings=findings)
        assert response.status_code == 201, response.text


async def grades_when(client: StackClient, settled: Any, timeout: float = 90, **params: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.http.get(
            f"{client.scoring_url}/api/v1/grades", params={"period": PERIOD, "scope": SCOPE, **params}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if settled(body) or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.5)


def by_hall(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {hall["hall_id"]: hall for hall in body["halls"]}


def expected_scores() -> dict[str, float]:
    return {hall: round(PROFILES[profile][2], 2) for hall, profile, *_ in HALLS}


async def test_forty_halls_get_the_scores_and_grades_worked_out_by_hand(client: StackClient) -> None:
    for hall_id, profile, level, ownership, *_ in HALLS:
        await client.register_hall(level=level, ownership=ownership, province=PROVINCE, city="杭州", hall_id=hall_id)
        await play(client, hall_id, profile)

    scores = expected_scores()
    body = await grades_when(client, lambda b: {h: x["score"] for h, x in by_hall(b).items()} == scores)

    halls = by_hall(body)
    assert {hall: halls[hall]["score"] for hall in halls} == scores
    assert (body["graded_halls"], body["excellent_places"], body["good_places"]) == (36, 1, 7)
    assert (body["not_assessed_halls"], halls["ZJ-U-1"]["status"], halls["ZJ-U-1"]["rank"]) == (1, "not_assessed", None)
    assert halls["ZJ-U-1"]["ungraded_reason"].startswith("not assessed: 0 inspection(s)")
    # The three at 93 are equal on every tie-break key too: tied at the boundary, for the campaign to decide.
    assert sorted(h for h, x in halls.items() if x["tied_at_boundary"]) == ["ZJ-07", "ZJ-08", "ZJ-09"]
    assert halls["ZJ-07"]["tie_break"] == {
        "inspection_score": 15 - 7,  # innovation without data 15, findings B1 and E1 cost 7
        "satisfaction": 20,
        "response_timeliness": 20,
        "fewer_substantiated_complaints": 0,
    }
    assert {hall: (halls[hall]["grade"], halls[hall]["dropped_by_quota"]) for hall, *_ in HALLS} == {
        hall: (grade, dropped) for hall, _, _, _, grade, dropped in HALLS
    }
    assert halls["ZJ-L4-1"]["ungraded_reason"].startswith("level-4") and halls["ZJ-L4-1"]["rank"] is None
    assert halls["ZJ-P-1"]["ungraded_reason"].startswith("partner")
    assert [halls[h]["rank"] for h in ("ZJ-01", "ZJ-04", "ZJ-05", "ZJ-06", "ZJ-07", "ZJ-09")] == [1, 4, 4, 6, 7, 7]


async def test_a_hall_manager_reads_its_own_hall_ranked_in_its_city_province_and_group_and_no_other(
    client: StackClient,
) -> None:
    await grades_when(client, lambda b: {h: x["score"] for h, x in by_hall(b).items()} == expected_scores())
    manager = bearer(staff_token("manager-zj-04", OrgUnit((PROVINCE, "杭州", "ZJ-04")), Role.hall_manager))

    for scope in ("group", SCOPE, f"{SCOPE}/杭州"):
        response = await client.http.get(
            f"{client.scoring_url}/api/v1/grades", params={"period": PERIOD, "scope": scope}, headers=manager
        )
        assert response.status_code == 200, response.text
        [own] = response.json()["halls"]
        assert (own["hall_id"], own["grade"], own["rank"]) == ("ZJ-04", "good", 4)
    assert response.json()["graded_halls"] == 36  # ranked among the whole scope

    audit = await client.http.get(
        f"{client.scoring_url}/api/v1/halls/ZJ-04/audit",
        params={"as_of": client.now().isoformat(), "scope": SCOPE},
        headers=manager,
    )
    assert audit.status_code == 200, audit.text
    assert audit.json()["standing"]["grade"] == "good"
    other_scope = await client.http.get(
        f"{client.scoring_url}/api/v1/grades", params={"period": PERIOD, "scope": "group/江苏"}, headers=manager
    )
    other_audit = await client.http.get(
        f"{client.scoring_url}/api/v1/halls/ZJ-05/audit",
        params={"as_of": client.now().isoformat(), "scope": SCOPE},
        headers=manager,
    )
    what_if = await client.http.post(
        f"{client.scoring_url}/api/v1/grades/what-if",
        params={"period": PERIOD, "scope": SCOPE},
        json={"policy_version": "2026-12"},
        headers=manager,
    )
    assert (other_scope.status_code, other_audit.status_code) == (404, 404)
    assert what_if.status_code == 403  # what-ifs are for quality managers


def duplicates_dropped(metrics: str) -> float:
    """From a consumer's /metrics: how many events it received again and dropped."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "consumer_events_total" and sample.labels["outcome"] == "duplicate"
    )


async def test_the_same_events_again_change_no_score(client: StackClient) -> None:
    before = await grades_when(client, lambda b: True)
    scoring = client.stack.services["scoring"]
    scoring.kill()
    client.republish()  # every complaint event is published again, and reaches scoring after its restart
    await client.wait_until_relayed("complaints")
    client.stack.restart_service("scoring")
    await client.wait_until_scored()

    applied = await client.database.fetchval(
        "SELECT count(*) FROM projections.score_changes"
        " WHERE source_event_type NOT IN ('SlaBreached', 'SlaClockStopped')"  # escalation's, not republished
    )
    assert applied > 0
    assert duplicates_dropped((await client.http.get(f"{scoring.url}/metrics")).text) >= applied
    after = await grades_when(client, lambda b: True)
    assert after == before


async def test_one_halls_new_complaint_changes_another_halls_grade_and_the_past_stays_queryable(
    client: StackClient,
) -> None:
    await client.wait_until_scored()  # escalation's verdicts too, which move no score here
    before = client.now()
    response = await client.post_complaint(complaint_body("ZJ-01"))  # unresolved: resolution 1 of 2
    assert response.status_code == 201

    now = await grades_when(client, lambda b: by_hall(b)["ZJ-01"]["score"] != 100)

    halls = by_hall(now)
    assert (halls["ZJ-01"]["score"], halls["ZJ-01"]["grade"]) == (85, "meets")
    assert (halls["ZJ-02"]["grade"], halls["ZJ-02"]["dropped_by_quota"]) == ("excellent", False)  # 98 now leads
    audit = await client.http.get(
        f"{client.scoring_url}/api/v1/halls/ZJ-01/audit", params={"as_of": before.isoformat(), "scope": SCOPE}
    )
    assert audit.status_code == 200, audit.text
    standing = audit.json()["standing"]
    assert (standing["score"], standing["grade"], standing["rank"]) == (100, "excellent", 1)
    # Escalation's verdicts on the two clocks arrive on their own topic: in no fixed order among the steps.
    assert sorted((c["source_event_type"], c["fact"]) for c in audit.json()["changes"]) == [
        ("ComplaintClosed", "closed"),
        ("ComplaintRegistered", "complaint_registered"),
        ("FeedbackReceived", "feedback"),
        ("InspectionRecorded", "inspected"),
        ("SlaClockStopped", "first_response_stopped"),
        ("SlaClockStopped", "resolution_stopped"),
    ]
    effects = await client.http.get(f"{client.projections_url}/api/v1/complaints/{response.json()['id']}/score-effects")
    [effect] = effects.json()
    assert (effect["score_before"], effect["score"]) == (100, 85)
    assert {c["component"]: (c["before"], c["after"]) for c in effect["changes"]} == {"resolution_rate": (30, 15)}

    await client.register_hall(province=PROVINCE, city="杭州", hall_id="ZJ-LATER")  # after `before`
    assert "ZJ-LATER" in by_hall(await grades_when(client, lambda b: "ZJ-LATER" in by_hall(b)))
    past = by_hall(await grades_when(client, lambda b: True, as_of=before.isoformat()))
    assert "ZJ-LATER" not in past and past["ZJ-01"]["score"] == 100


async def test_a_what_if_with_other_weights_reports_the_changed_grades_and_leaves_live_ones(
    client: StackClient,
) -> None:
    live_before = await grades_when(client, lambda b: True)
    draft = json.loads((SCORING_POLICY_DIR / "2026-01.json").read_text())
    draft["version"] = "draft-satisfaction-first"
    draft["weights"] |= {"resolution_rate": 20, "satisfaction": 30}

    response = await client.http.post(
        f"{client.scoring_url}/api/v1/grades/what-if",
        params={"period": PERIOD, "scope": SCOPE},
        json={"policy": draft},
    )

    assert response.status_code == 200, response.text
    report = response.json()
    changed = {d["hall_id"]: (d["live_grade"], d["what_if_grade"]) for d in report["differences"]}
    changed = {hall: grades for hall, grades in changed.items() if grades[0] != grades[1]}
    # By hand: 93.33 (two of three closed, all satisfied) now beats 93 for the last good places, and an
    # open complaint's hall (20 + 0 + 30 + 15 + 15 = 80) now meets the standard.
    assert changed == {
        **{f"ZJ-0{n}": ("good", "meets") for n in (7, 8, 9)},
        **{f"ZJ-{n}": ("meets", "good") for n in (11, 12, 13)},
        **{f"ZJ-{n}": ("below", "meets") for n in range(24, 30)},
    }
    assert report["changed_grades"] == 12
    scores = {d["hall_id"]: d["what_if_score"] for d in report["differences"]}
    assert (scores["ZJ-01"], scores["ZJ-04"], scores["ZJ-14"], scores["ZJ-11"]) == (90, 94, 90, 93.33)
    assert await grades_when(client, lambda b: True) == live_before

    # Replayed under the live policy itself, the facts give back exactly the live scores and grades.
    same = await client.http.post(
        f"{client.scoring_url}/api/v1/grades/what-if",
        params={"period": PERIOD, "scope": SCOPE},
        json={"policy_version": report["live_policy_version"]},
    )
    assert same.status_code == 200, same.text
    assert (same.json()["differences"], same.json()["changed_grades"]) == ([], 0)
    assert same.json()["halls_compared"] == report["halls_compared"] == len(by_hall(live_before))


async def test_a_quarter_and_a_year_grade_each_hall_on_the_mean_of_its_monthly_scores(client: StackClient) -> None:
    await client.wait_until_scored()
    year = PERIOD[:4]
    quarter = f"{year}-Q{(int(PERIOD[5:]) + 2) // 3}"
    months = {month: by_hall(await grades_when(client, lambda b: True, period=month)) for month in months_of(year)}

    for period in (quarter, year):
        body = await grades_when(client, lambda b: True, period=period)
        halls = by_hall(body)
        in_period = months_of(period)
        assert len(in_period) == (3 if period == quarter else 12)
        assert {hall: halls[hall]["score"] for hall in halls} == {
            hall: round(statistics.fmean(months[month][hall]["score"] for month in in_period), 2) for hall in halls
        }
        # The month's inspections are the quarter's and the year's evidence: the same halls are assessed.
        assert {h for h, x in halls.items() if x["status"] == "graded"} == {
            h for h, x in months[PERIOD].items() if x["status"] == "graded"
        }
        assert body["policy_version"] == "2026-01"  # in force when the quarter and the year began


async def test_highlights_earn_a_capped_bonus_innovation_its_rating_and_media_exposure_costs_from_2026_12(
    client: StackClient,
) -> None:
    await client.register_hall(province="江苏", city="南京", hall_id="JS-01")
    inspection = await inspect(
        client,
        "JS-01",
        failed_items=["A1"],
        findings=[{"item_id": "A1", "description": "A1 failed"}],
        innovation_rating=0.6,
        highlights=[{"description": "sign-language counter", "points": 3}, {"description": "elder desk", "points": 4}],
    )
    assert inspection.status_code == 201, inspection.text
    complaint = await client.post_complaint(complaint_body("JS-01") | {"channel": "internet_media"})
    complaint_id = complaint.json()["id"]
    for action, body in [
        ("acknowledge", {}),
        (
            "check",
            {
                "substantiated": True,
                "root_cause": "rude answer",
                "root_cause_class": "hall_service",
                "responsible_unit": "JS-01",
            },
        ),
    ]:
        assert (await client.step(complaint_id, action, body)).status_code == 200, action
    await client.wait_until_scored()  # the check too, which moves no score under 2026-01
    # By hand, policy 2026-01: response 20 + resolution 0 of 1 + satisfaction without data 20 + efficiency 15
    # + innovation 15 x 0.6 = 9 -> 64; A1 costs 2; highlights 3 + 4 capped at 5 -> 67.
    grades = await grades_when(client, lambda b: by_hall(b).get("JS-01", {}).get("score") == 67, scope="group/江苏")
    assert by_hall(grades)["JS-01"]["grade"] == "below"

    card = await client.http.get(f"{client.projections_url}/api/v1/halls/JS-01/scorecard", params={"period": PERIOD})
    assert card.status_code == 200, card.text
    assert (card.json()["components"]["innovation"], card.json()["bonus"], card.json()["deductions"]) == (9, 5, 2)
    [inspected] = [c for c in card.json()["changes"] if c["source_event_type"] == "InspectionRecorded"]
    assert {c["component"]: (c["before"], c["after"]) for c in inspected["changes"]} == {
        "innovation": (15, 9),
        "bonus": (0, 5),
    }

    # 2026-12 adds the media-exposure deduction (10) that 2026-01 left out: a substantiated complaint
    # that came through the internet media costs it.
    what_if = await client.http.post(
        f"{client.scoring_url}/api/v1/grades/what-if",
        params={"period": PERIOD, "scope": "group/江苏"},
        json={"policy_version": "2026-12"},
    )
    assert what_if.status_code == 200, what_if.text
    [difference] = what_if.json()["differences"]
    assert (difference["hall_id"], difference["live_score"], difference["what_if_score"]) == ("JS-01", 67, 57)


async def test_the_units_review_of_a_halls_check_replaces_its_ruling_in_the_score(client: StackClient) -> None:
    await client.register_hall(province="江苏", city="苏州", hall_id="JS-SZ-01")
    hall = OrgUnit(("江苏", "苏州", "JS-SZ-01"))
    manager = bearer(staff_token("manager-js-sz", hall, Role.hall_manager))
    city_quality = bearer(staff_token("quality-sz", OrgUnit(("江苏", "苏州")), Role.quality_manager))
    complaint = await client.post_complaint(complaint_body("JS-SZ-01") | {"priority": "major"})
    complaint_id = complaint.json()["id"]
    ruling = {
        "substantiated": False,
        "root_cause": "customer misread the bill",
        "root_cause_class": "customer_side",
        "responsible_unit": "JS-SZ-01",
    }
    assert (await client.step(complaint_id, "check", ruling, headers=manager)).status_code == 200

    own_review = await client.step(complaint_id, "review-check", {"substantiated": True}, headers=manager)
    review = await client.step(complaint_id, "review-check", {"substantiated": True}, headers=city_quality)
    again = await client.step(complaint_id, "check", ruling, headers=manager)

    assert (own_review.status_code, review.status_code, again.status_code) == (403, 200, 409)
    await client.wait_until_scored()
    card = await client.http.get(f"{client.projections_url}/api/v1/halls/JS-SZ-01/scorecard", params={"period": PERIOD})
    # By hand, policy 2026-01: an open, unanswered complaint (resolution 0 of 1) scores 70; a substantiated
    # major complaint costs 5 more, which the hall's own ruling had spared it.
    assert (card.json()["score"], card.json()["deductions"]) == (65, 5)
    [reviewed] = [c for c in card.json()["changes"] if c["source_event_type"] == "ComplaintCheckReviewed"]
    assert (reviewed["score_before"], reviewed["score"]) == (70, 65)


async def test_a_what_if_policy_with_a_bad_entry_is_refused_naming_it(client: StackClient) -> None:
    draft = json.loads((SCORING_POLICY_DIR / "2026-01.json").read_text())
    draft["weights"]["speed"] = 5  # no such component

    response = await client.http.post(
        f"{client.scoring_url}/api/v1/grades/what-if", params={"period": PERIOD}, json={"policy": draft}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:3] == ["body", "policy", "weights"]


def moved(change: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {c["component"]: (c["before"], c["after"]) for c in change["changes"]}


async def test_a_breach_consumed_before_its_registration_is_booked_to_the_breach(client: StackClient) -> None:
    """Submitted late, a complaint is breached at registration, and the breach (escalation's topic) may reach
    scoring before the registration (complaints' topic). A lock on the table where scoring first records a
    registration holds every registration back meanwhile, so here it always does."""
    hall_id = await client.register_hall(province="安徽", city="合肥", hall_id="AH-01")
    received_at = datetime(2026, 11, 12, 10, tzinfo=CHINA_TIME)  # response due on the 13th, resolution on the 19th
    async with client.database.acquire() as holding, holding.transaction():
        await holding.execute("LOCK TABLE scoring.complaint_periods IN EXCLUSIVE MODE")
        response = await client.post_complaint(complaint_body(hall_id) | {"received_at": received_at.isoformat()})
        assert response.status_code == 201, response.text
        await client.wait_until_relayed("complaints")
        await client.wait_until_consumed("escalation")
        await client.wait_until_relayed("escalation")
        scoring_group = await client.consumer_group("scoring")
        assert await wait_until_caught_up(client.stack.bootstrap_servers, scoring_group, ESCALATION_EVENTS)
    await client.wait_until_scored()

    card = await client.http.get(
        f"{client.projections_url}/api/v1/halls/{hall_id}/scorecard", params={"period": PERIOD}
    )
    assert card.status_code == 200, card.text
    assert [
        (c["source_event_type"], c["fact"], c["score_before"], c["score"], moved(c)) for c in card.json()["changes"]
    ] == [
        ("ComplaintRegistered", "complaint_registered", 100, 70, {"resolution_rate": (30, 0)}),
        ("SlaBreached", "response_breached", 70, 50, {"response_timeliness": (20, 0)}),
    ]
    effects = await client.http.get(f"{client.projections_url}/api/v1/complaints/{response.json()['id']}/score-effects")
    assert [(e["source_event_type"], moved(e)) for e in effects.json()] == [
        ("ComplaintRegistered", {"resolution_rate": (30, 0)}),
        ("SlaBreached", {"response_timeliness": (20, 0)}),
    ]


async def test_a_complaint_closed_without_an_acknowledgement_was_answered_in_time_by_escalations_verdict(
    client: StackClient,
) -> None:
    """A closure stops the first-response clock too. Scoring takes escalation's verdict on the clock, so the
    closed complaint counts as answered in time, beside one whose response breached at registration."""
    hall_id = await client.register_hall(province="福建", city="福州", hall_id="FJ-01")
    received_late = datetime(2026, 11, 12, 10, tzinfo=CHINA_TIME)  # response due on the 13th, resolution on the 19th
    late = await client.post_complaint(complaint_body(hall_id) | {"received_at": received_late.isoformat()})
    assert late.status_code == 201, late.text
    closed = await client.post_complaint(complaint_body(hall_id))
    assert closed.status_code == 201, closed.text
    closed_id = closed.json()["id"]
    check = {
        "substantiated": True,
        "root_cause": "counter applied the wrong tariff",
        "root_cause_class": "hall_service",
        "responsible_unit": hall_id,
    }
    rectify = {"action": "refund", "owner": "billing-team", "deadline": "2030-01-01T18:00:00+08:00", "evidence": []}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("check", check),
        ("contact", {"outcome": "reached"}),
        ("rectify", rectify),
        ("feedback", {"satisfaction": "satisfied"}),
        ("close", {}),
    ]
    for action, body in steps:
        assert (await client.step(closed_id, action, body)).status_code == 200, action
    await client.wait_until_scored()

    card = await client.http.get(
        f"{client.projections_url}/api/v1/halls/{hall_id}/scorecard", params={"period": PERIOD}
    )
    assert card.status_code == 200, card.text
    # By hand: response 1 of 2 in time 10 (were the closure not a response: 0 of 1, 0); resolution 1 of 2 15;
    # satisfaction 20; efficiency 15; innovation without data 15.
    assert (card.json()["components"]["response_timeliness"], card.json()["score"]) == (10, 75)
    effects = await client.http.get(f"{client.projections_url}/api/v1/complaints/{closed_id}/score-effects")
    assert ("SlaClockStopped", "first_response_stopped") in [
        (e["source_event_type"], e["fact"]) for e in effects.json()
    ]


def rebuild(client: StackClient) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.projections", "rebuild"],
        env=client.stack.service_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


async def test_rebuilding_every_read_model_from_zero_gives_what_the_live_ones_hold(client: StackClient) -> None:
    identical = rebuild(client)
    assert identical.returncode == 0, identical.stdout + identical.stderr
    assert "IDENTICAL" in identical.stdout and "score_changes: identical" in identical.stdout
    assert re.search(r"rebuilding.* (\d+)/\1 .*events/s", identical.stderr), identical.stderr  # the progress shown

    tampered = await client.database.fetchval(
        "UPDATE projections.score_changes SET score = score + 1"
        " WHERE event_id = (SELECT min(event_id::text)::uuid FROM projections.score_changes) RETURNING event_id::text"
    )
    try:
        different = rebuild(client)
    finally:
        await client.database.execute(
            "UPDATE projections.score_changes SET score = score - 1 WHERE event_id = $1::uuid", tampered
        )
    assert different.returncode == 1
    assert "score_changes: DIFFERENT" in different.stdout and f"only live: {tampered}" in different.stdout
