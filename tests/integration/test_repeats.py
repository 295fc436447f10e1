"""Repeat complaints (重复投诉) end to end: the same phone within the window, found by a keyed digest that
stays in the complaints service."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from services.complaints.main import DEVELOPMENT_PERSONAL_DATA_KEY
from services.complaints.personal_data import MasterKey
from shared.topics import COMPLAINTS_EVENTS
from tests.integration.harness import StackClient, complaint_body, eventually


async def register(client: StackClient, hall_id: str, phone: str) -> dict[str, Any]:
    body = complaint_body(hall_id)
    response = await client.post_complaint({**body, "customer": {**body["customer"], "phone": phone}})
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


def logs_holding(root: Path, needle: bytes) -> list[str]:
    return [str(path) for path in root.rglob("*.log") if needle in path.read_bytes()]


async def test_a_customers_third_complaint_in_the_window_is_their_second_repeat_and_the_phone_stays_inside(
    client: StackClient,
) -> None:
    hall_id = await client.register_hall()
    phone, other_phone = (f"139{secrets.randbelow(10**8):08}" for _ in range(2))
    first, second, third = [await register(client, hall_id, phone) for _ in range(3)]
    stranger = await register(client, hall_id, other_phone)
    client.move_clock_to(client.now() + timedelta(days=31))
    after_the_window = await register(client, hall_id, phone)

    assert [c["repeat_count"] for c in (first, second, third)] == [0, 1, 2]
    assert third["repeat_of"] == [first["number"], second["number"]]
    assert (stranger["repeat_count"], after_the_window["repeat_count"], after_the_window["repeat_of"]) == (0, 0, [])
    replayed = await client.http.get(f"{client.complaints_url}/api/v1/complaints/{third['id']}")
    assert (replayed.json()["repeat_count"], replayed.json()["repeat_of"]) == (2, third["repeat_of"])

    related = await client.http.get(f"{client.complaints_url}/api/v1/complaints/{second['id']}/related")
    assert related.status_code == 200
    assert [c["number"] for c in related.json()["items"]] == [c["number"] for c in (first, third, after_the_window)]

    async def listed() -> bool:
        response = await client.http.get(
            f"{client.projections_url}/api/v1/complaints", params={"hall_id": hall_id, "repeat": "true"}
        )
        return {c["id"] for c in response.json()["items"]} == {second["id"], third["id"]}

    assert await eventually(listed)
    metrics = (await client.http.get(f"{client.complaints_url}/metrics")).text
    assert 'complaints_repeat_total{category="billing",province="广东"} 2.0' in metrics

    digest = MasterKey(DEVELOPMENT_PERSONAL_DATA_KEY.encode()).phone_digest(phone)
    events = [json.dumps(record, ensure_ascii=False) for record in await client.records_on(COMPLAINTS_EVENTS)]
    registrations = [event for event in events if third["id"] in event and "ComplaintRegistered" in event]
    assert registrations and '"repeat_count": 2' in registrations[0]
    for needle in (phone, digest.hex(), base64.b64encode(digest).decode()):
        assert not [event for event in events if needle in event], needle
    assert not logs_holding(client.stack.config.data_dir, phone.encode())
