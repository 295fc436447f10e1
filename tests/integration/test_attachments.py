"""Evidence files end to end: uploaded, referred to by rectification reports, inspection findings and an
incident's result, read only within scope, checked against their digest, refused when too large (without
being held in memory) or of the wrong type, deleted with their complaint's customer and, unreferred, after
the retention policy's hours."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devstack.stack import Stack
from shared.auth import Role
from shared.organisation import OrgUnit
from tests.integration.harness import StackClient, bearer, complaint_body, eventually, running_stack, staff_token

INSPECTOR = bearer(staff_token("inspector-9", OrgUnit(), Role.inspector))
GUANGDONG_AUDITOR = bearer(staff_token("auditor-gd", OrgUnit(("广东",)), Role.auditor))
ZHEJIANG_AUDITOR = bearer(staff_token("auditor-zj", OrgUnit(("浙江",)), Role.auditor))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CAP = 20 * 2**20
OVER_CAP = 30 * 2**20
BOUNDARY = "evidence-boundary-7f3a"
CHECK = {
    "substantiated": True,
    "root_cause": "duplicate billing run",
    "root_cause_class": "billing_system",
    "responsible_unit": "group/广东/深圳",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Sweeps every half second, so that the retention policy's deletions are seen at once."""
    yield from running_stack(tmp_path_factory, {"RETENTION_SWEEP_SECONDS": "0.5"})


def photo() -> bytes:
    """A PNG of its own: random bytes after the signature, so each test's file has a digest of its own."""
    return PNG_SIGNATURE + os.urandom(4096)


def stored_file(client: StackClient, attachment_id: str) -> Path:
    return client.stack.config.data_dir / "attachments" / attachment_id[:2] / attachment_id


def peak_resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def upload(
    client: StackClient, content: bytes, name: str = "door.png", headers: dict[str, str] | None = None
) -> Any:
    return await client.http.post(
        f"{client.complaints_url}/api/v1/attachments",
        files={"file": (name, content, "image/png")},
        headers=headers,
    )


async def rectify_order(client: StackClient, hall_id: str, manager: dict[str, str], attachments: list[str]) -> Any:
    """The answer to a rectification report referring to the files, on an order of a new inspection of the hall."""
    inspected = await client.http.post(
        f"{client.complaints_url}/api/v1/inspections",
        json={
            "hall_id": hall_id,
            "type": "mystery_shopper",
            "failed_items": ["A1"],
            "findings": [{"item_id": "A1", "description": "no greeting at the door"}],
        },
        headers=INSPECTOR,
    )
    assert inspected.status_code == 201, inspected.text
    [order_id] = inspected.json()["rectification_orders"]
    report = {"report": "greeter posted at the door", "attachments": attachments}
    for action, headers, body in (
        ("communicate", INSPECTOR, {}),
        ("acknowledge", manager, {}),
        ("rectify", manager, report),
    ):
        response = await client.http.post(
            f"{client.complaints_url}/api/v1/rectification-orders/{order_id}/{action}",
            json={"reason": f"{action} for the test", **body},
            headers=headers,
        )
        assert response.status_code == 200 or action == "rectify", (action, response.text)
    return response


async def rectified_order(client: StackClient, hall_id: str, manager: dict[str, str], attachments: list[str]) -> Any:
    rectified = await rectify_order(client, hall_id, manager, attachments)
    assert rectified.status_code == 200, rectified.text
    return rectified.json()


async def send_multipart(url: str, headers: dict[str, str], file_bytes: int, chunked: bool) -> None:
    """Sends a PNG of `file_bytes` as a multipart upload, by hand, while reading the answer. The service closes
    the connection once it has answered, and the unread bytes make that a reset, which may reach the client
    before the answer does: so the answer is read from the service's metrics, not from here."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    opening = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + PNG_SIGNATURE
    closing = f"\r\n--{BOUNDARY}--\r\n".encode()
    filler = b"\x00" * 2**20
    body_length = len(opening) + file_bytes - len(PNG_SIGNATURE) + len(closing)
    head = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {parts.netloc}",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
    ]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {body_length}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())

    def framed(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data

    async def send_body() -> None:
        with contextlib.suppress(ConnectionError):  # the service answers and closes before taking it all
            writer.write(framed(opening))
            for _ in range((file_bytes - len(PNG_SIGNATURE)) // len(filler)):
                writer.write(framed(filler))
                await writer.drain()
            writer.write(framed(closing) + (b"0\r\n\r\n" if chunked else b""))
            await writer.drain()

    sending = asyncio.create_task(send_body())
    try:
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(reader.read(), timeout=30)  # until the service closes the connection
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.close()


async def upload_answers(client: StackClient) -> Counter[str]:
    """How many uploads the complaints service answered, by status (whether its middleware or the route did)."""
    metrics = (await client.http.get(f"{client.complaints_url}/metrics")).text
    counts: Counter[str] = Counter()
    for line in metrics.splitlines():
        counted = 'route="/api/v1/attachments"' in line or 'route="unmatched"' in line
        if line.startswith("http_server_requests_total{") and 'method="POST"' in line and counted:
            counts[line.split('status="')[1].split('"')[0]] += int(float(line.rsplit(" ", 1)[1]))
    return counts


async def test_a_30_mb_upload_gets_413_without_being_held_in_memory(client: StackClient) -> None:
    service = client.stack.services["complaints"]
    assert service.pid is not None
    url = f"{client.complaints_url}/api/v1/attachments"
    credentials = {"Authorization": client.http.headers["Authorization"]}
    stored_before = sorted((client.stack.config.data_dir / "attachments").rglob("*"))
    peak_before, answered_before = peak_resident_mib(service.pid), await upload_answers(client)

    await send_multipart(url, credentials, OVER_CAP, chunked=False)  # declared: refused before a byte is read
    await send_multipart(url, credentials, OVER_CAP, chunked=True)  # undeclared: refused once past the cap
    await send_multipart(url, {}, OVER_CAP, chunked=True)  # no credentials: refused unread

    answered = await upload_answers(client)
    assert (answered["413"] - answered_before["413"], answered["401"] - answered_before["401"]) == (2, 1)
    # Had the body been held, the service's peak would have grown by the 30 MB (and by the cap's 20 at least).
    assert peak_resident_mib(service.pid) - peak_before < 15
    assert sorted((client.stack.config.data_dir / "attachments").rglob("*")) == stored_before
    within_cap = await upload(client, PNG_SIGNATURE + os.urandom(CAP - len(PNG_SIGNATURE)))
    assert within_cap.status_code == 201, within_cap.text
    assert within_cap.json()["size"] == CAP


async def test_a_reports_evidence_reads_the_same_for_an_auditor_above_and_is_absent_for_another_province(
    client: StackClient,
) -> None:
    hall_id = await client.register_hall()
    manager = bearer(staff_token("manager-1", OrgUnit.of_hall("广东", "深圳", hall_id), Role.hall_manager))
    content = photo()

    uploaded = await upload(client, content, name="门口 13812345678.png", headers=manager)

    assert uploaded.status_code == 201, uploaded.text
    attachment = uploaded.json()
    assert attachment == {
        "id": hashlib.sha256(content).hexdigest(),
        "size": len(content),
        "content_type": "image/png",
        "name": "门口 138********.png",
    }
    order = await rectified_order(client, hall_id, manager, [attachment["id"]])
    assert order["attachments"] == [attachment]
    url = f"{client.complaints_url}/api/v1/attachments/{attachment['id']}"
    downloaded = await client.http.get(url, headers=GUANGDONG_AUDITOR)
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == content
    assert downloaded.headers["content-type"] == "image/png"
    verified = await client.http.get(f"{url}/verify", headers=GUANGDONG_AUDITOR)
    assert verified.json() == {
        "id": attachment["id"],
        "intact": True,
        "sha256_now": attachment["id"],
        "size_now": len(content),
    }
    for outside in (url, f"{url}/verify"):
        hidden = await client.http.get(outside, headers=ZHEJIANG_AUDITOR)
        assert hidden.status_code == 404, hidden.text
        assert hidden.json()["detail"][0]["type"] == "not_found"
    timeline = await client.wait_for_timeline(order["id"], 4, kind="rectification-orders")
    assert timeline[-1]["type"] == "RectificationOrderRectified"


async def test_a_report_may_refer_only_to_files_its_author_can_see(client: StackClient) -> None:
    hall_id = await client.register_hall()
    manager = bearer(staff_token("manager-2", OrgUnit.of_hall("广东", "深圳", hall_id), Role.hall_manager))
    elsewhere = bearer(staff_token("manager-zj", OrgUnit.of_hall("浙江", "杭州", "ZJ-HZ-001"), Role.hall_manager))
    foreign = (await upload(client, photo(), headers=elsewhere)).json()["id"]
    uploaded = (await upload(client, photo(), headers=manager)).json()["id"]

    refused = await rectify_order(client, hall_id, manager, [uploaded, foreign])

    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "attachments", 1]
    assert refused.json()["detail"][0]["type"] == "unknown_attachment"


async def test_a_findings_file_is_readable_by_the_inspected_halls_manager_and_absent_for_another_province(
    client: StackClient,
) -> None:
    hall_id = await client.register_hall()
    manager = bearer(staff_token("manager-4", OrgUnit.of_hall("广东", "深圳", hall_id), Role.hall_manager))
    content = photo()
    attachment = (await upload(client, content, name="queue.png", headers=INSPECTOR)).json()
    url = f"{client.complaints_url}/api/v1/attachments/{attachment['id']}"
    assert (await client.http.get(url, headers=manager)).status_code == 404  # the hall's once a finding refers to it
    finding = {"item_id": "A1", "description": "queue out of the door", "attachments": [attachment["id"]]}
    inspection = {"hall_id": hall_id, "type": "mystery_shopper", "failed_items": ["A1"], "findings": [finding]}
    inspections = f"{client.complaints_url}/api/v1/inspections"

    unknown = {**inspection, "findings": [{**finding, "attachments": ["0" * 64]}]}
    refused = await client.http.post(inspections, json=unknown, headers=INSPECTOR)
    inspected = await client.http.post(inspections, json=inspection, headers=INSPECTOR)

    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "findings", 0, "attachments", 0]
    assert inspected.status_code == 201, inspected.text
    [order_id] = inspected.json()["rectification_orders"]
    order = await client.http.get(f"{client.complaints_url}/api/v1/rectification-orders/{order_id}", headers=manager)
    assert order.json()["attachments"] == [attachment]
    downloaded = await client.http.get(url, headers=manager)
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == content
    assert (await client.http.get(url, headers=ZHEJIANG_AUDITOR)).status_code == 404
    [opened] = await client.wait_for_timeline(order_id, 1, kind="rectification-orders")
    assert opened["details"]["attachments"] == [
        {"sha256": attachment["id"], "size": len(content), "content_type": "image/png", "name": "queue.png"}
    ]


async def test_an_incidents_result_refers_each_child_complaint_to_its_file(client: StackClient) -> None:
    hall_id = await client.register_hall()
    children = [(await client.post_complaint(complaint_body(hall_id))).json()["id"] for _ in range(2)]
    now = client.now()
    opened = await client.http.post(
        f"{client.complaints_url}/api/v1/incidents",
        json={
            "cause": "fibre cut",
            "area": "group/广东/深圳",
            "category": "network_quality",
            "window_start": (now - timedelta(hours=2)).isoformat(),
            "window_end": now.isoformat(),
        },
    )
    assert opened.status_code == 201, opened.text
    incident_url = f"{client.complaints_url}/api/v1/incidents/{opened.json()['id']}"
    linked = await client.http.post(f"{incident_url}/children", json={"reason": "same outage", "add": children})
    assert linked.json()["done"] == 2, linked.text
    attachment = (await upload(client, photo(), name="splice.png")).json()
    result = {"reason": "service restored", "action": "fibre spliced", "owner": "NOC"}

    refused = await client.http.post(f"{incident_url}/result", json={**result, "attachments": ["0" * 64]})
    answered = await client.http.post(f"{incident_url}/result", json={**result, "attachments": [attachment["id"]]})

    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "attachments", 0]
    assert answered.status_code == 200, answered.text
    assert answered.json()["done"] == 2
    for child in children:
        complaint = await client.http.get(f"{client.complaints_url}/api/v1/complaints/{child}")
        assert complaint.json()["attachments"] == [attachment]
    manager = bearer(staff_token("manager-5", OrgUnit.of_hall("广东", "深圳", hall_id), Role.hall_manager))
    url = f"{client.complaints_url}/api/v1/attachments/{attachment['id']}"
    assert (await client.http.get(url, headers=manager)).status_code == 200


async def test_a_stored_file_altered_on_disk_is_flagged_by_verify(client: StackClient) -> None:
    content = photo()
    attachment = (await upload(client, content)).json()
    altered = content[:-1] + bytes([content[-1] ^ 0xFF])

    stored_file(client, attachment["id"]).write_bytes(altered)

    verified = await client.http.get(f"{client.complaints_url}/api/v1/attachments/{attachment['id']}/verify")
    assert verified.status_code == 200, verified.text
    assert verified.json() == {
        "id": attachment["id"],
        "intact": False,
        "sha256_now": hashlib.sha256(altered).hexdigest(),
        "size_now": len(altered),
    }


async def test_a_file_whose_bytes_are_not_an_allowed_type_gets_415_whatever_it_claims(client: StackClient) -> None:
    refused = await upload(client, b"MZ\x90\x00" + os.urandom(1024), name="photo.png")

    assert refused.status_code == 415, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "file"]
    not_multipart = await client.http.post(f"{client.complaints_url}/api/v1/attachments", json={"file": "x"})
    assert not_multipart.status_code == 415, not_multipart.text


async def test_an_erased_complaints_attachments_are_gone_unless_another_subject_refers_to_them(
    client: StackClient,
) -> None:
    hall_id = await client.register_hall()
    manager = bearer(staff_token("manager-3", OrgUnit.of_hall("广东", "深圳", hall_id), Role.hall_manager))
    recording = b"#!AMR\n" + os.urandom(2048)
    own = (await upload(client, recording, name="call.amr", headers=manager)).json()["id"]
    shared = (await upload(client, photo(), headers=manager)).json()["id"]
    await rectified_order(client, hall_id, manager, [shared])
    registered = await client.post_complaint(complaint_body(hall_id))
    complaint = registered.json()
    for action, body in (
        ("check", CHECK),
        ("contact", {"outcome": "reached"}),
        (
            "rectify",
            {
                "action": "refund the double charge",
                "owner": "billing-team",
                "deadline": (client.now() + timedelta(days=3)).isoformat(),
                "attachments": [own, shared],
            },
        ),
    ):
        response = await client.step(complaint["id"], action, body)
        assert response.status_code == 200, (action, response.text)
    assert [attachment["id"] for attachment in response.json()["attachments"]] == [own, shared]
    assert stored_file(client, own).exists()

    erasure = {"reason": "PIPL art. 47 request", "complaint_numbers": [complaint["number"]]}
    erased = await client.http.post(f"{client.complaints_url}/api/v1/customers/erasure", json=erasure)

    assert erased.status_code == 200, erased.text
    gone = await client.http.get(f"{client.complaints_url}/api/v1/attachments/{own}")
    assert gone.status_code == 404, gone.text
    assert not stored_file(client, own).exists()
    shown = await client.http.get(f"{client.complaints_url}/api/v1/complaints/{complaint['id']}")
    assert shown.json()["attachments"] == []
    kept = await client.http.get(f"{client.complaints_url}/api/v1/attachments/{shared}", headers=GUANGDONG_AUDITOR)
    assert kept.status_code == 200, kept.text


async def test_an_upload_no_step_refers_to_is_deleted_after_the_policys_hours(client: StackClient) -> None:
    """Last: it moves the stack's clock a day on."""
    hall_id = await client.register_hall()
    manager = bearer(
        staff_token(f"manager-{uuid.uuid4().hex[:6]}", OrgUnit.of_hall("广东", "深圳", hall_id), Role.hall_manager)
    )
    unreferred = (await upload(client, photo(), headers=manager)).json()["id"]
    referred = (await upload(client, photo(), headers=manager)).json()["id"]
    await rectified_order(client, hall_id, manager, [referred])

    client.move_clock_to(client.now() + timedelta(hours=25))

    async def deleted() -> bool:
        answer = await client.http.get(f"{client.complaints_url}/api/v1/attachments/{unreferred}")
        return answer.status_code == 404

    assert await eventually(deleted, timeout=15)
    assert not stored_file(client, unreferred).exists()
    kept = await client.http.get(f"{client.complaints_url}/api/v1/attachments/{referred}")
    assert kept.status_code == 200, kept.text
