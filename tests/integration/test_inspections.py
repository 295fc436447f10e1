"""An inspection's findings each open a rectification order that runs its own loop to closure."""

from __future__ import annotations

import uuid
from typing import Any

from shared.auth import Role
from shared.clock import CHINA_TIME
from shared.organisation import OrgUnit
from tests.integration.harness import StackClient, bearer, eventually, staff_token

INSPECTOR = bearer(staff_token("inspector-7", OrgUnit(), Role.inspector))
HALL_MANAGER_UNIT = OrgUnit(("广东", "深圳"))


async def inspect(client: StackClient, hall_id: str, **overrides: Any) -> Any:
    body = {
        "hall_id": hall_id,
        "type": "mystery_shopper",
        "failed_items": ["A1", "B1", "E1"],
        "findings": [
            {"item_id": "A1", "description": "no greeting at the door"},
            {"item_id": "B1", "description": "pregnant customer waited 14 minutes"},
            {"item_id": "E1", "description": "spilled drink left for 20 minutes"},
        ],
        **overrides,
    }
    return await client.http.post(f"{client.complaints_url}/api/v1/inspections", json=body, headers=INSPECTOR)


async def order_step(client: StackClient, order_id: str, action: str, headers: dict[str, str], **body: Any) -> Any:
    response = await client.http.post(
        f"{client.complaints_url}/api/v1/rectification-orders/{order_id}/{action}",
        json={"reason": f"{action} for the test", **body},
        headers=headers,
    )
    return response


async def test_three_findings_open_three_orders_that_run_to_closure(client: StackClient) -> None:
    hall_id = await client.register_hall()
    manager = bearer(staff_token("manager-1", OrgUnit(("广东", "深圳", hall_id)), Role.hall_manager))

    created = await inspect(client, hall_id)

    assert created.status_code == 201, created.text
    inspection = created.json()
    assert (inspection["score"], inspection["max_score"]) == (35 - 2 - 4 - 3, 35)
    orders = inspection["rectification_orders"]
    assert len(orders) == 3
    rejected_once, *others = orders
    for order_id in orders:
        for action, headers, body in (
            ("communicate", INSPECTOR, {}),
            ("acknowledge", manager, {}),
            ("rectify", manager, {"report": "staff retrained", "evidence": ["doc://report-1"]}),
        ):
            response = await order_step(client, order_id, action, headers, **body)
            assert response.status_code == 200, (action, response.text)
    rejected = await order_step(client, rejected_once, "reject", INSPECTOR, reason="no evidence of retraining")
    verify_too_early = await order_step(client, rejected_once, "verify", INSPECTOR)
    again = await order_step(client, rejected_once, "rectify", manager, report="retraining log attached")
    closed = [await order_step(client, order_id, "verify", INSPECTOR) for order_id in orders]

    assert rejected.json()["status"] == "acknowledged" and rejected.json()["rejections"] == 1
    assert verify_too_early.status_code == 409
    assert again.status_code == 200
    assert [response.json()["status"] for response in closed] == ["closed"] * 3
    rejected_timeline = await client.wait_for_timeline(rejected_once, 7, kind="rectification-orders")
    assert [entry["type"] for entry in rejected_timeline] == [
        "RectificationOrderOpened",
        "RectificationOrderCommunicated",
        "RectificationOrderAcknowledged",
        "RectificationOrderRectified",
        "RectificationOrderRejected",
        "RectificationOrderRectified",
        "RectificationOrderVerified",
    ]
    assert rejected_timeline[4]["details"]["reason"] == "no evidence of retraining"
    for order_id in others:
        timeline = await client.wait_for_timeline(order_id, 5, kind="rectification-orders")
        assert timeline[-1]["type"] == "RectificationOrderVerified" and len(timeline) == 5


async def test_orders_refuse_steps_out_of_order(client: StackClient) -> None:
    hall_id = await client.register_hall()
    [order_id, *_] = (await inspect(client, hall_id)).json()["rectification_orders"]
    manager = bearer(staff_token("manager-2", OrgUnit(("广东", "深圳", hall_id)), Role.hall_manager))

    rectify_first = await order_step(client, order_id, "rectify", manager, report="done")
    acknowledge_first = await order_step(client, order_id, "acknowledge", manager)
    manager_cannot_verify = await order_step(client, order_id, "verify", manager)

    assert rectify_first.status_code == acknowledge_first.status_code == 409
    assert rectify_first.json()["detail"][0]["msg"] == (
        "the hall manager must acknowledge the findings before rectifying"
    )
    assert manager_cannot_verify.status_code == 403


async def test_unknown_checklist_item_is_refused_naming_the_field(client: StackClient) -> None:
    hall_id = await client.register_hall()

    response = await inspect(client, hall_id, findings=[{"item_id": "Z9", "description": "x"}])

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "findings", 0, "item_id"]


async def test_a_retried_inspection_opens_its_orders_once(client: StackClient) -> None:
    hall_id = await client.register_hall()
    key = str(uuid.uuid4())
    headers = {**INSPECTOR, "Idempotency-Key": key}
    body = {"hall_id": hall_id, "type": "self_check", "findings": [{"item_id": "C1", "description": "no badge"}]}
    url = f"{client.complaints_url}/api/v1/inspections"

    first = await client.http.post(url, json=body, headers=headers)
    again = await client.http.post(url, json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()


async def test_inspections_and_orders_list_by_hall_type_period_and_status_a_page_at_a_time_within_the_unit(
    client: StackClient,
) -> None:
    hall_id, other_hall = await client.register_hall(), await client.register_hall()
    manager = bearer(staff_token("manager-1", OrgUnit(("广东", "深圳", hall_id)), Role.hall_manager))
    first = (await inspect(client, hall_id)).json()
    second = (await inspect(client, hall_id, type="third_party", failed_items=[], findings=[])).json()
    elsewhere = (await inspect(client, other_hall)).json()
    communicated = first["rectification_orders"][0]
    assert (await order_step(client, communicated, "communicate", INSPECTOR)).status_code == 200
    url = f"{client.projections_url}/api/v1"
    period = client.now().astimezone(CHINA_TIME).strftime("%Y-%m")

    async def listed(path: str, headers: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
        response = await client.http.get(f"{url}/{path}", params=params, headers=headers or {})
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    async def projected() -> bool:
        orders = await listed("rectification-orders", hall_id=hall_id, status="communicated")
        inspections = await listed("inspections", hall_id=hall_id)
        return [o["id"] for o in orders["items"]] == [communicated] and len(inspections["items"]) == 2

    assert await eventually(projected)
    walked, cursor = [], None
    while True:
        page = await listed("inspections", hall_id=hall_id, limit=1, **({"cursor": cursor} if cursor else {}))
        walked += [item["id"] for item in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert walked == [second["id"], first["id"]]  # newest first
    by_type = await listed("inspections", hall_id=hall_id, type="third_party", period=period)
    assert [(i["id"], i["findings"]) for i in by_type["items"]] == [(second["id"], 0)]
    orders = await listed("rectification-orders", hall_id=hall_id, period=period)
    assert sorted(o["id"] for o in orders["items"]) == sorted(first["rectification_orders"])
    assert {o["status"] for o in orders["items"]} == {"open", "communicated"}
    own = await listed("inspections", manager)
    assert {i["id"] for i in own["items"]} == {first["id"], second["id"]}  # not the other hall's
    assert elsewhere["id"] not in {i["id"] for i in own["items"]}
    bad = await client.http.get(f"{url}/inspections", params={"period": "2026-13"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "period"]
