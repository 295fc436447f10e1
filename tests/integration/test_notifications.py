"""Customers hear of their complaints: one email and one SMS per trigger, none twice, none at night, and a
gateway that keeps failing ends as a recorded failure while the complaint's loop goes on.

Against the real SMTP server and the recording gateway of the local stack (devstack/outbound.py).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any

import pytest

from devstack.stack import Stack
from shared.clock import CHINA_TIME
from shared.topics import COMPLAINTS_EVENTS
from tests.integration.harness import StackClient, complaint_body, eventually, running_stack
from tests.integration.test_escalation import next_working_morning
from tests.integration.test_lifecycle import CHECK, RECTIFY, walk
from tests.integration.test_surveys import answer

EMAIL = "zhang.san@example.cn"
PHONE = "13912345678"
LOOP: list[tuple[str, dict[str, Any]]] = [
    ("acknowledge", {}),
    ("check", CHECK),
    ("contact", {"outcome": "reached"}),
    ("rectify", RECTIFY),
    ("feedback", {"satisfaction": "satisfied"}),
    ("close", {}),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"TRACES_EXPORTER": "console", "NOTIFY_POLL_SECONDS": "0.2"}
    yield from running_stack(tmp_path_factory, env, notifications=True)


def outbound_url(client: StackClient) -> str:
    assert client.stack.outbound is not None
    return client.stack.outbound.url


async def sms_of(client: StackClient, complaint_id: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (await client.http.get(f"{outbound_url(client)}/messages")).json()
    return [m for m in messages if m["channel"] == "sms" and m["idempotency_key"].startswith(complaint_id)]


async def emails_of(client: StackClient, complaint_id: str) -> list[dict[str, Any]]:
    mail: list[dict[str, Any]] = (await client.http.get(f"{outbound_url(client)}/mail")).json()
    return [m for m in mail if complaint_id in m["message_id"]]


async def register(client: StackClient, email: str | None = EMAIL) -> tuple[str, str]:
    body = complaint_body(await client.register_hall())
    body["customer"] = {"name": "张三", "phone": PHONE, **({"email": email} if email else {})}
    response = await client.post_complaint(body)
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["number"]


async def notifications(client: StackClient, complaint_id: str) -> list[dict[str, Any]]:
    rows = await client.database.fetch(
        "SELECT * FROM complaints.customer_notifications WHERE complaint_id = $1 ORDER BY occurrence, channel",
        uuid.UUID(complaint_id),
    )
    return [dict(row) for row in rows]


async def notices_on_timeline(client: StackClient, complaint_id: str, count: int) -> list[dict[str, Any]]:
    async def recorded() -> bool:
        return len(await notices(client, complaint_id)) >= count

    assert await eventually(recorded)
    return await notices(client, complaint_id)


async def notices(client: StackClient, complaint_id: str) -> list[dict[str, Any]]:
    response = await client.http.get(f"{client.projections_url}/api/v1/complaints/{complaint_id}/timeline")
    events = response.json()["events"] if response.status_code == 200 else []  # 404 until projected
    return [e for e in events if e["type"] in ("CustomerNotified", "NotificationFailed")]


async def test_one_complaint_sends_one_email_and_one_sms_per_trigger_and_republishing_sends_none_again(
    client: StackClient,
) -> None:
    client.move_clock_to(next_working_morning(client))
    complaint_id, number = await register(client)
    await walk(client, complaint_id, LOOP)

    async def all_sent() -> bool:
        return len(await sms_of(client, complaint_id)) >= 3 and len(await emails_of(client, complaint_id)) >= 3

    assert await eventually(all_sent)
    sms, emails = await sms_of(client, complaint_id), await emails_of(client, complaint_id)
    assert len(sms) == len(emails) == 3
    assert {m["to"] for m in sms} == {PHONE} and {m["to"] for m in emails} == {EMAIL}
    assert all(number in m["text"] for m in sms) and all(number in m["subject"] for m in emails)
    survey_links = [link for m in sms for link in re.findall(r"/complaints/survey/(\S+)", m["text"])]
    assert len(survey_links) == 1
    answered = await answer(client, f"/api/v1/public/surveys/{survey_links[0]}", "satisfied")
    assert answered.status_code == 200, answered.text
    timeline = await notices_on_timeline(client, complaint_id, 6)
    assert sorted((e["details"]["trigger"], e["details"]["channel"]) for e in timeline) == sorted(
        (trigger, channel) for trigger in ("registered", "result_recorded", "closed") for channel in ("sms", "email")
    )
    assert all(e["details"]["template_version"] == 1 and e["details"]["attempts"] == 1 for e in timeline)

    client.republish()
    await client.wait_until_relayed("complaints")
    later_id, _ = await register(client)

    async def later_one_sent() -> bool:
        return len(await sms_of(client, later_id)) == 1 and len(await emails_of(client, later_id)) == 1

    assert await eventually(later_one_sent)  # the notifier has run since the republish
    assert len(await sms_of(client, complaint_id)) == len(await emails_of(client, complaint_id)) == 3
    assert len(await notices(client, complaint_id)) == 6


async def test_an_sms_due_at_night_is_held_until_eight_and_email_goes_at_once(client: StackClient) -> None:
    night = datetime.combine(next_working_morning(client).date(), time(23), CHINA_TIME)
    client.move_clock_to(night)
    complaint_id, _ = await register(client)

    async def emailed() -> bool:
        return len(await emails_of(client, complaint_id)) == 1

    assert await eventually(emailed)

    async def held() -> bool:
        return any(
            row["channel"] == "sms" and row["due_at"] > night for row in await notifications(client, complaint_id)
        )

    assert await eventually(held)
    morning = datetime.combine(night.date() + timedelta(days=1), time(8), CHINA_TIME)
    (sms_row,) = [row for row in await notifications(client, complaint_id) if row["channel"] == "sms"]
    assert (sms_row["state"], sms_row["due_at"], sms_row["attempts"]) == ("pending", morning, 0)
    assert await sms_of(client, complaint_id) == []

    client.move_clock_to(morning)

    async def texted() -> bool:
        return len(await sms_of(client, complaint_id)) == 1

    assert await eventually(texted)
    (sms_notice,) = [e for e in await notices_on_timeline(client, complaint_id, 2) if e["details"]["channel"] == "sms"]
    assert datetime.fromisoformat(sms_notice["details"]["at"]) >= morning


async def test_a_failing_gateway_is_retried_then_recorded_as_failed_and_the_loop_goes_on(client: StackClient) -> None:
    client.move_clock_to(next_working_morning(client))
    await client.http.put(f"{outbound_url(client)}/failing", json={"failing": True})
    try:
        complaint_id, _ = await register(client, email=None)
        for attempts in (1, 2, 3):

            async def attempted(made: int = attempts) -> bool:
                return any(row["attempts"] >= made for row in await notifications(client, complaint_id))

            assert await eventually(attempted), f"attempt {attempts} not made"
            (row,) = await notifications(client, complaint_id)
            assert row["state"] == "pending" and row["last_error"] == "the gateway answered 503"
            client.move_clock_to(row["due_at"] + timedelta(seconds=1))
        (failed,) = await notices_on_timeline(client, complaint_id, 1)
    finally:
        await client.http.put(f"{outbound_url(client)}/failing", json={"failing": False})

    assert failed["type"] == "NotificationFailed"
    assert (failed["details"]["reason"], failed["details"]["attempts"]) == ("the gateway answered 503", 4)
    assert (await notifications(client, complaint_id))[0]["state"] == "failed"
    assert await sms_of(client, complaint_id) == []
    acknowledged = await client.step(complaint_id, "acknowledge")
    assert acknowledged.status_code == 200, acknowledged.text


async def test_no_event_log_or_span_carries_the_phone_or_the_email(client: StackClient) -> None:
    client.move_clock_to(next_working_morning(client))
    complaint_id, _ = await register(client)

    async def sent() -> bool:
        return len(await notices(client, complaint_id)) == 2

    assert await eventually(sent)
    await client.wait_until_relayed("complaints")
    records = await client.records_on(COMPLAINTS_EVENTS)
    assert any(r["event_type"] == "CustomerNotified" for r in records)
    published = repr(records)
    logs_dir = client.stack.config.data_dir / "logs"
    service_logs: dict[str, str] = {}

    async def spans_exported() -> bool:  # in batches: the consumer's span of a notification says they are
        service_logs.update((name, (logs_dir / f"{name}.log").read_text()) for name in ("complaints", "projections"))
        return '"cloudevents.event_type": "CustomerNotified"' in service_logs["projections"]

    assert await eventually(spans_exported)
    assert f'"name": "send {COMPLAINTS_EVENTS}"' in service_logs["complaints"]
    for text in (published, *service_logs.values()):
        assert PHONE not in text and EMAIL not in text


async def test_make_republish_shows_the_relay_catching_up_and_sends_the_customers_nothing(client: StackClient) -> None:
    client.move_clock_to(next_working_morning(client))
    complaint_id, _ = await register(client)
    assert await eventually(lambda: sms_then(client, complaint_id, 1))
    await client.wait_until_relayed("complaints")

    shown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.complaints", "republish", "--from-position", "0"],
        env=client.stack.service_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert shown.returncode == 0, shown.stderr
    assert re.search(r"republishing.* (\d+)/\1 .*100%", shown.stderr), shown.stderr
    assert len(await sms_of(client, complaint_id)) == 1


async def sms_then(client: StackClient, complaint_id: str, count: int) -> bool:
    return len(await sms_of(client, complaint_id)) == count
