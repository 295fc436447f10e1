"""SLA clocks end to end: complaint events in, warnings, breaches and escalations out, on a moved clock.

Every service of this stack reads the time from one offset file, which the tests only ever
move forward (timelines are ordered by when things happened).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from services.escalation.calendar import Calendars
from services.escalation.policy import POLICY_DIR, load_policies, load_policy, policy_at
from shared.auth import Role
from shared.clock import CHINA_TIME
from shared.organisation import OrgUnit
from tests.integration.harness import StackClient, bearer, complaint_body, eventually, staff_token
from tests.integration.test_inspections import inspect

SLA_EVENTS = ("SlaWarning", "SlaBreached", "SlaEscalated")
CALENDAR = Calendars(assume_weekdays_in_unknown_years=True).default
URGENT_RESPONSE = timedelta(hours=2)  # the default policy's first-response limit for urgent complaints


def next_working_morning(client: StackClient) -> datetime:
    """09:00 China time on the first working day after the stack's today."""
    day = client.now().astimezone(CHINA_TIME).date() + timedelta(days=1)
    while not CALENDAR.is_working_day(day):
        day += timedelta(days=1)
    return datetime.combine(day, time(9), CHINA_TIME)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def register_urgent(client: StackClient, hall_id: str, received_at: datetime) -> str:
    body = {**complaint_body(hall_id), "priority": "urgent", "received_at": received_at.isoformat()}
    response = await client.post_complaint(body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def clock_named(clocks: dict[str, Any], name: str) -> dict[str, Any]:
    return next(clock for clock in clocks["clocks"] if clock["name"] == name)


def sla_entries(timeline: list[dict[str, Any]], clock: str = "first_response") -> list[dict[str, Any]]:
    return [e for e in timeline if e["type"] in SLA_EVENTS and e["details"]["clock"] == clock]


async def sla_timeline(client: StackClient, complaint_id: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The complaint's first-response SLA entries once there are `count`, then a moment more to catch extras."""
    entries: list[dict[str, Any]] = []

    async def arrived() -> bool:
        nonlocal entries
        response = await client.http.get(f"{client.projections_url}/api/v1/complaints/{complaint_id}/timeline")
        entries = sla_entries(response.json()["events"]) if response.status_code == 200 else []
        return len(entries) >= count

    await eventually(arrived, timeout)
    await asyncio.sleep(1.5)  # a duplicate would arrive within the scheduler's and consumer's next passes
    await arrived()
    return entries


async def test_warnings_breach_and_escalations_fire_in_order_each_once_into_the_timeline(client: StackClient) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start)
    complaint_id = await register_urgent(client, await client.register_hall(), start)
    milestones = clock_named(await client.clocks(complaint_id), "first_response")["milestones"]
    assert [(m["kind"], m["fraction"]) for m in milestones] == [
        ("warning", 0.5),
        ("warning", 0.8),
        ("breach", 1.0),
        ("escalation", 1.5),
        ("escalation", 2.0),
        ("escalation", 2.5),
    ]

    for count, milestone in enumerate(milestones, start=1):
        client.move_clock_to(instant(milestone["due_at"]) + timedelta(milliseconds=50))
        entries = await sla_timeline(client, complaint_id, count)
        assert len(entries) == count, entries

    assert [(e["type"], e["details"]["fraction"]) for e in entries] == [
        ("SlaWarning", 0.5),
        ("SlaWarning", 0.8),
        ("SlaBreached", 1.0),
        ("SlaEscalated", 1.5),
        ("SlaEscalated", 2.0),
        ("SlaEscalated", 2.5),
    ]
    hall = entries[0]["details"]["hall_id"]
    assert [(e["details"].get("level"), e["details"].get("target_unit")) for e in entries[2:]] == [
        (1, f"group/广东/深圳/{hall}"),
        (2, "group/广东/深圳"),
        (3, "group/广东"),
        (4, "group"),
    ]
    metrics = (await client.http.get(f"{client.escalation_url}/metrics")).text
    for kind, level in (("warning", 0), ("breach", 1), ("escalation", 2), ("escalation", 4)):
        expected = 2 if kind == "warning" else 1  # the only complaint so far in this module's stack
        assert (
            f'sla_milestones_total{{clock="first_response",level="{level}",milestone="{kind}"}} {expected}.0' in metrics
        )
    lateness = [instant(e["details"]["at"]) - instant(e["details"]["due_at"]) for e in entries]
    assert all(timedelta(0) <= late < timedelta(seconds=1) for late in lateness), lateness
    assert instant(milestones[2]["due_at"]) == start + URGENT_RESPONSE


async def test_a_pause_extends_the_response_deadline_by_exactly_the_paused_working_time(client: StackClient) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start)
    complaint_id = await register_urgent(client, await client.register_hall(), start)
    before = clock_named(await client.clocks(complaint_id), "first_response")["deadline"]

    client.move_clock_to(start + timedelta(minutes=30))
    assert (await client.step(complaint_id, "pause")).status_code == 200
    client.move_clock_to(start + timedelta(minutes=75))
    assert (await client.step(complaint_id, "resume")).status_code == 200

    async def resumed() -> bool:
        response = clock_named(await client.clocks(complaint_id), "first_response")
        return bool(response["state"] == "running" and response["deadline"] != before)

    assert await eventually(resumed)
    response = clock_named(await client.clocks(complaint_id), "first_response")
    timeline = await client.wait_for_timeline(complaint_id, 3)
    steps = {
        e["type"]: instant(e["details"]["at"]) for e in timeline if e["type"] in ("ComplaintPaused", "ComplaintResumed")
    }
    paused_for = steps["ComplaintResumed"] - steps["ComplaintPaused"]
    assert abs(paused_for - timedelta(minutes=45)) < timedelta(seconds=1)  # all within business hours
    assert instant(before) == start + URGENT_RESPONSE
    assert instant(response["deadline"]) - instant(before) == paused_for


async def test_a_pause_stops_the_clocks_for_one_working_day_at_most_unless_a_unit_above_approves_it(
    client: StackClient,
) -> None:
    capped_policy = load_policy(POLICY_DIR / "2026-12.json")
    assert capped_policy.max_pause is not None
    client.move_clock_to(max(client.now(), capped_policy.effective_from))
    start = next_working_morning(client)  # policy 2026-12 in force: one pause stops the clocks 1 working day
    client.move_clock_to(start)
    hall_id = await client.register_hall()
    capped = await register_urgent(client, hall_id, start)
    approved = await register_urgent(client, hall_id, start)
    city_quality = bearer(staff_token("quality-sz", OrgUnit(("广东", "深圳")), Role.quality_manager))
    hall_manager = bearer(staff_token("manager-1", OrgUnit(("广东", "深圳", hall_id)), Role.hall_manager))
    paused_at = start + timedelta(minutes=30)
    client.move_clock_to(paused_at)
    for complaint_id in (capped, approved):
        assert (await client.step(complaint_id, "pause")).status_code == 200
    own_approval = await client.step(approved, "approve-pause", headers=hall_manager)
    approval = await client.step(approved, "approve-pause", headers=city_quality)
    assert (own_approval.status_code, approval.status_code) == (403, 200)

    async def caught_up() -> bool:
        timeline = await client.wait_for_timeline(approved, 4)
        states = [clock_named(await client.clocks(c), "first_response")["state"] for c in (capped, approved)]
        return any(e["type"] == "ComplaintPauseApproved" for e in timeline) and states == ["paused", "paused"]

    assert await eventually(caught_up)
    assert clock_named(await client.clocks(approved), "first_response")["deadline"] is None  # until resumed
    # The capped one runs again a working day after the pause began, with 1.5 of its 2 working hours left.
    runs_again = CALENDAR.add_working_time(paused_at, capped_policy.max_pause.working_time(CALENDAR.working_day))
    expected = CALENDAR.add_working_time(runs_again, URGENT_RESPONSE - timedelta(minutes=30))
    assert instant(clock_named(await client.clocks(capped), "first_response")["deadline"]) == expected


async def test_deadlines_passed_while_the_service_was_killed_fire_once_on_restart(client: StackClient) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start)
    hall_id = await client.register_hall()
    complaint_ids = [await register_urgent(client, hall_id, start) for _ in range(3)]
    answered_meanwhile = await register_urgent(client, hall_id, start)
    for complaint_id in [*complaint_ids, answered_meanwhile]:
        await client.clocks(complaint_id)

    client.stack.services["escalation"].kill()
    client.move_clock_to(start + timedelta(minutes=30))
    assert (await client.step(answered_meanwhile, "acknowledge")).status_code == 200
    client.move_clock_to(start + URGENT_RESPONSE + timedelta(seconds=1))
    client.stack.restart_service("escalation")

    for complaint_id in complaint_ids:
        entries = await sla_timeline(client, complaint_id, 3)
        assert [e["type"] for e in entries] == ["SlaWarning", "SlaWarning", "SlaBreached"]
    # Its acknowledgement was still queued at the restart: no deadline fires before it is consumed.
    assert await sla_timeline(client, answered_meanwhile, 0) == []
    assert clock_named(await client.clocks(answered_meanwhile), "first_response")["state"] == "stopped"


async def test_two_replicas_fire_each_milestone_once(client: StackClient) -> None:
    replica = client.stack.start_replica("escalation")
    try:
        start = next_working_morning(client)
        client.move_clock_to(start)
        hall_id = await client.register_hall()
        complaint_ids = [await register_urgent(client, hall_id, start) for _ in range(8)]
        for complaint_id in complaint_ids:
            await client.clocks(complaint_id)

        client.move_clock_to(start + URGENT_RESPONSE * 1.5 + timedelta(seconds=1))

        for complaint_id in complaint_ids:
            entries = await sla_timeline(client, complaint_id, 4)
            assert [e["type"] for e in entries] == ["SlaWarning", "SlaWarning", "SlaBreached", "SlaEscalated"]
        assert replica.running and client.stack.services["escalation"].running
    finally:
        replica.stop()


async def test_a_new_policy_recalculates_open_clocks_and_records_the_change(
    client: StackClient, tmp_path: Path
) -> None:
    start = next_working_morning(client)
    client.move_clock_to(start)
    complaint_id = await register_urgent(client, await client.register_hall(), start)
    in_force = policy_at(load_policies(), start)
    assert clock_named(await client.clocks(complaint_id), "first_response")["policy_version"] == in_force.version

    policies = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, policies)
    stricter = json.loads((POLICY_DIR / f"{in_force.version}.json").read_text())
    stricter["version"] = "stricter"
    stricter["effective_from"] = (start - timedelta(minutes=1)).isoformat()  # after every other, before the complaint
    stricter["rules"].append({"match": {"priority": "urgent"}, "first_response": {"working_hours": 1}})
    (policies / "stricter.json").write_text(json.dumps(stricter))
    client.stack.config.extra_env["POLICY_DIR"] = str(policies)
    # Not a clean stop: after two clean leaves in a row the local broker never regroups (README, known limits).
    client.stack.services["escalation"].kill()
    client.stack.restart_service("escalation")

    response = clock_named(await client.clocks(complaint_id), "first_response")
    assert (response["policy_version"], instant(response["deadline"])) == ("stricter", start + timedelta(hours=1))
    changes = (await client.http.get(f"{client.escalation_url}/api/v1/sla/rule-changes")).json()
    known = [policy.version for policy in load_policies()]
    assert [change["policy_versions"] for change in changes][-2:] == [known, [*known, "stricter"]]
    assert changes[-1]["recalculated"] >= 1

    async def recorded() -> bool:
        timeline = await client.wait_for_timeline(complaint_id, 1)
        return any(e["type"] == "SlaRecalculated" for e in timeline)

    assert await eventually(recorded)
    timeline = await client.wait_for_timeline(complaint_id, 1)
    [recalculated] = [e["details"] for e in timeline if e["type"] == "SlaRecalculated"]
    assert instant(recalculated["previous_deadlines"]["first_response"]) == start + URGENT_RESPONSE
    assert instant(recalculated["deadlines"]["first_response"]) == start + timedelta(hours=1)


async def test_a_rectification_order_has_its_own_clock_visible_only_within_scope(client: StackClient) -> None:
    hall_id = await client.register_hall()
    inspection = await inspect(client, hall_id, failed_items=["A1"], findings=[{"item_id": "A1", "description": "x"}])
    assert inspection.status_code == 201, inspection.text
    [order_id] = inspection.json()["rectification_orders"]

    clocks = await client.clocks(order_id, kind="rectification-orders")

    [clock] = clocks["clocks"]
    assert (clock["name"], clock["state"], clock["limit"]["working_days"]) == ("rectification", "running", 3)
    other_hall = bearer(staff_token("manager-9", OrgUnit(("广东", "广州", "GZ-OTHER")), Role.hall_manager))
    async with client.acting_as(other_hall) as outsider:
        refused = await outsider.http.get(f"{client.escalation_url}/api/v1/rectification-orders/{order_id}/clocks")
    assert refused.status_code == 404
    assert refused.json()["detail"][0]["loc"] == ["path", "rectification_order_id"]
