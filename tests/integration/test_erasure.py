"""A customer's personal data erased end to end: reads, the public query, the timeline and a republish show
none of it, and no file of the whole stack (PostgreSQL's included) holds the name or the phone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from shared.auth import Role
from shared.organisation import OrgUnit
from tests.integration.harness import StackClient, bearer, complaint_body, eventually, staff_token

NAME, PHONE = "司马知秋", "13987654321"


def files_holding(root: Path, *needles: bytes) -> list[str]:
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and any(needle in path.read_bytes() for needle in needles)
    ]


async def progress(client: StackClient, number: str) -> int:
    response = await client.http.post(
        f"{client.complaints_url}/api/v1/public/complaints/progress",
        json={"number": number, "phone_last_four": PHONE[-4:]},
        headers={"Authorization": ""},
    )
    return response.status_code


async def test_an_erased_customer_is_gone_from_every_read_and_every_file(client: StackClient) -> None:
    hall = await client.register_hall()
    body = complaint_body(hall, description=f"{NAME} ({PHONE}) was billed twice")
    registered = await client.post_complaint({**body, "customer": {"name": NAME, "phone": PHONE, "email": None}})
    assert registered.status_code == 201, registered.text
    complaint: dict[str, Any] = registered.json()
    assert NAME not in complaint["description"] and PHONE not in complaint["description"]
    acknowledged = await client.step(complaint["id"], "acknowledge", {"reason": f"called {PHONE} back"})
    assert acknowledged.status_code == 200, acknowledged.text
    handler = bearer(staff_token("handler-1", OrgUnit.of_hall("广东", "深圳", hall), Role.handler))
    url = f"{client.complaints_url}/api/v1/complaints/{complaint['id']}"
    assert (await client.http.get(url, headers=handler)).json()["customer"] == {
        "name": NAME,
        "phone": PHONE,
        "email": None,
    }
    assert await progress(client, complaint["number"]) == 200

    erasure = {"reason": "PIPL art. 47 request, ticket 88", "phones": [PHONE]}
    erased = await client.http.post(f"{client.complaints_url}/api/v1/customers/erasure", json=erasure)
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"erased": [complaint["number"]], "already_erased": []}
    by_number = {"reason": "the same request again", "complaint_numbers": [complaint["number"]]}
    again = await client.http.post(f"{client.complaints_url}/api/v1/customers/erasure", json=by_number)
    assert again.json() == {"erased": [], "already_erased": [complaint["number"]]}
    # The phone's digest went with the key: nothing is left to find the customer by.
    by_phone = await client.http.post(f"{client.complaints_url}/api/v1/customers/erasure", json=erasure)
    assert by_phone.status_code == 404, by_phone.text
    manager = bearer(staff_token("manager-1", OrgUnit.of_hall("广东", "深圳", hall), Role.hall_manager))
    refused = await client.http.post(f"{client.complaints_url}/api/v1/customers/erasure", json=erasure, headers=manager)
    assert refused.status_code == 403

    shown = (await client.http.get(url, headers=handler)).json()
    assert (shown["customer"], shown["customer_erased"]) == ({"name": "erased", "phone": "erased", "email": None}, True)
    assert await progress(client, complaint["number"]) == 404
    timeline = await client.wait_for_timeline(complaint["id"], 3)
    assert [event["type"] for event in timeline][-1] == "CustomerErased"

    await asyncio.to_thread(client.republish, 0)
    await client.wait_until_relayed("complaints")
    republished = json.dumps(await client.wait_for_timeline(complaint["id"], 3), ensure_ascii=False)
    assert NAME not in republished and PHONE not in republished

    await client.database.execute("CHECKPOINT")  # every page PostgreSQL holds in memory, written to its files

    async def no_file_holds_them() -> bool:
        return not await asyncio.to_thread(files_holding, client.stack.config.data_dir, NAME.encode(), PHONE.encode())

    assert await eventually(no_file_holds_them, timeout=5), files_holding(
        client.stack.config.data_dir, NAME.encode(), PHONE.encode()
    )
