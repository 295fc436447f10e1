"""Who may see what: credentials are required, and each caller sees only its own part of the organisation."""

from __future__ import annotations

import uuid

from shared.auth import Role
from shared.organisation import OrgUnit
from tests.integration.harness import (
    FRONT_LINE_HALL,
    FRONT_LINE_KEY,
    StackClient,
    bearer,
    complaint_body,
    staff_token,
)

KEY = {"X-API-Key": FRONT_LINE_KEY}


async def test_no_or_bad_credentials_get_401(client: StackClient) -> None:
    complaint_url = f"{client.complaints_url}/api/v1/complaints/{uuid.uuid4()}"
    list_url = f"{client.projections_url}/api/v1/complaints"
    forged = staff_token("x", OrgUnit(), Role.admin)[:-4] + "AAAA"
    for url in (complaint_url, list_url):
        for headers in ({}, {"Authorization": f"Bearer {forged}"}, {"X-API-Key": "guess"}):
            async with client.acting_as(headers) as caller:
                response = await caller.http.get(url)
            assert response.status_code == 401, (url, headers)
            assert response.json()["detail"][0]["type"] == "unauthenticated"
            assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_health_needs_no_credentials(client: StackClient) -> None:
    for service in client.stack.services.values():
        async with client.acting_as({}) as anonymous:
            assert (await anonymous.http.get(f"{service.url}/healthz")).status_code == 200


async def test_a_halls_key_files_and_reads_its_own_complaints_but_no_other_halls(client: StackClient) -> None:
    province, city, key_hall = FRONT_LINE_HALL
    await client.register_hall(province=province, city=city, hall_id=key_hall)
    neighbour = await client.register_hall(province=province, city=city)
    other = await client.post_complaint(complaint_body(neighbour))
    async with client.acting_as(KEY) as counter:
        own = await counter.post_complaint(complaint_body(key_hall))
        refused = await counter.post_complaint(complaint_body(neighbour))
        read_own = await counter.http.get(f"{client.complaints_url}/api/v1/complaints/{own.json()['id']}")
        read_other = await counter.http.get(f"{client.complaints_url}/api/v1/complaints/{other.json()['id']}")
        act_other = await counter.step(other.json()["id"], "acknowledge")
        other_timeline = await counter.http.get(
            f"{client.projections_url}/api/v1/complaints/{other.json()['id']}/timeline"
        )

    assert own.status_code == 201 and read_own.status_code == 200
    assert read_own.json()["owner"] == "counter-system-sz"
    assert (read_other.status_code, act_other.status_code, other_timeline.status_code) == (404, 404, 404)
    assert refused.status_code == 422 and refused.json()["detail"][0]["type"] == "unknown_hall"


async def test_a_city_manager_sees_every_hall_of_the_city_and_none_of_another(client: StackClient) -> None:
    shenzhen = [await client.register_hall(city="深圳") for _ in range(2)]
    guangzhou = await client.register_hall(city="广州")
    ids = {}
    for hall_id in [*shenzhen, guangzhou]:
        ids[hall_id] = (await client.post_complaint(complaint_body(hall_id))).json()["id"]
    await client.wait_until_projected(set(ids.values()))
    manager = bearer(staff_token("sz-manager", OrgUnit(("广东", "深圳")), Role.quality_manager))

    listed: set[str] = set()
    for hall_id in [*shenzhen, guangzhou]:
        response = await client.http.get(
            f"{client.projections_url}/api/v1/complaints", params={"hall_id": hall_id}, headers=manager
        )
        listed |= {item["hall_id"] for item in response.json()["items"]}
    read_guangzhou = await client.http.get(
        f"{client.complaints_url}/api/v1/complaints/{ids[guangzhou]}", headers=manager
    )
    read_shenzhen = await client.http.get(
        f"{client.complaints_url}/api/v1/complaints/{ids[shenzhen[0]]}", headers=manager
    )

    assert listed == set(shenzhen)
    assert read_guangzhou.status_code == 404 and read_shenzhen.status_code == 200


async def test_a_hand_off_is_seen_and_accepted_by_the_receiving_unit_and_read_by_the_registering_hall(
    client: StackClient,
) -> None:
    province, city, key_hall = FRONT_LINE_HALL
    await ensure_key_hall(client)
    receiving = await client.register_hall(province=province, city=city)
    bystander = await client.register_hall(province=province, city=city)
    receiving_manager = bearer(staff_token("b-manager", OrgUnit((province, city, receiving)), Role.hall_manager))
    bystander_manager = bearer(staff_token("c-manager", OrgUnit((province, city, bystander)), Role.hall_manager))
    url = f"{client.complaints_url}/api/v1/complaints"

    async with client.acting_as(KEY) as counter:
        complaint_id = (await counter.post_complaint(complaint_body(key_hall))).json()["id"]
        unknown = await counter.step(complaint_id, "dispatch", {"to_unit": "NO-SUCH-HALL"})
        other_city = await counter.step(complaint_id, "dispatch", {"to_unit": f"group/{province}/佛山"})
        dispatched = await counter.step(complaint_id, "dispatch", {"to_unit": receiving})
        own_accept = await counter.step(complaint_id, "accept")
    async with client.acting_as(bystander_manager) as outsider:
        outsider_read = await outsider.http.get(f"{url}/{complaint_id}")
        outsider_accept = await outsider.step(complaint_id, "accept")
    async with client.acting_as(receiving_manager) as receiver:
        pending_read = await receiver.http.get(f"{url}/{complaint_id}")
        premature_step = await receiver.step(complaint_id, "acknowledge")
        accepted = await receiver.step(complaint_id, "accept")
        owner_step = await receiver.step(complaint_id, "acknowledge")
        timeline = await receiver.wait_for_timeline(complaint_id, 4)
        listed = await receiver.http.get(f"{client.projections_url}/api/v1/complaints", params={"hall_id": key_hall})
    async with client.acting_as(KEY) as counter:
        registering_read = await counter.http.get(f"{url}/{complaint_id}")
        registering_step = await counter.step(complaint_id, "check", {**CHECK_BODY})
    async with client.acting_as(bystander_manager) as outsider:
        outsider_timeline = await outsider.http.get(
            f"{client.projections_url}/api/v1/complaints/{complaint_id}/timeline"
        )
        outsider_list = await outsider.http.get(
            f"{client.projections_url}/api/v1/complaints", params={"hall_id": key_hall}
        )

    receiving_unit = str(OrgUnit((province, city, receiving)))
    assert (unknown.status_code, unknown.json()["detail"][0]["loc"]) == (422, ["body", "to_unit"])
    assert other_city.status_code == 422 and other_city.json()["detail"][0]["type"] == "unknown_unit"
    assert dispatched.status_code == 200 and dispatched.json()["pending_hand_off_to"] == receiving_unit
    assert own_accept.status_code == 403 and own_accept.json()["detail"][0]["type"] == "not_responsible"
    assert (outsider_read.status_code, outsider_accept.status_code) == (404, 404)
    assert pending_read.status_code == 200 and premature_step.status_code == 403
    assert accepted.status_code == 200 and accepted.json()["owner_unit"] == receiving_unit
    assert owner_step.status_code == 200 and owner_step.json()["acknowledged_at"] is not None
    assert registering_read.status_code == 200 and registering_read.json()["owner_unit"] == receiving_unit
    assert registering_step.status_code == 403
    assert [entry["type"] for entry in timeline][:4] == [
        "ComplaintRegistered",
        "ComplaintDispatched",
        "ComplaintHandOffAccepted",
        "ComplaintAcknowledged",
    ]
    assert [item["id"] for item in listed.json()["items"]] == [complaint_id]
    assert outsider_timeline.status_code == 404 and outsider_list.json()["items"] == []


async def ensure_key_hall(client: StackClient) -> None:
    """The front-line key's hall, which an earlier test of the module may have registered already."""
    province, city, key_hall = FRONT_LINE_HALL
    response = await client.http.get(f"{client.complaints_url}/api/v1/halls/{key_hall}")
    if response.status_code == 404:
        await client.register_hall(province=province, city=city, hall_id=key_hall)


CHECK_BODY = {
    "substantiated": True,
    "root_cause": "wrong tariff",
    "root_cause_class": "billing_system",
    "responsible_unit": "group",
}


async def test_complaint_list_filters_and_pages(client: StackClient) -> None:
    hall_id = await client.register_hall()
    created = []
    for priority in ("urgent", "normal", "urgent", "urgent"):
        body = {**complaint_body(hall_id), "priority": priority}
        created.append((await client.post_complaint(body)).json())
    await client.wait_until_projected({c["id"] for c in created})
    await client.step(created[0]["id"], "pause")
    url = f"{client.projections_url}/api/v1/complaints"

    first = await client.http.get(url, params={"hall_id": hall_id, "priority": "urgent", "limit": 2})
    second = await client.http.get(
        url, params={"hall_id": hall_id, "priority": "urgent", "limit": 2, "cursor": first.json()["next_cursor"]}
    )
    bad_cursor = await client.http.get(url, params={"cursor": "nonsense"})

    paged = [item["id"] for item in first.json()["items"] + second.json()["items"]]
    urgent = [c["id"] for c in created if c["priority"] == "urgent"]
    assert sorted(paged) == sorted(urgent) and second.json()["next_cursor"] is None
    assert bad_cursor.status_code == 422
