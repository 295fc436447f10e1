"""The published API description is complete, and fuzzing it finds no server error."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from shared.auth import OrgUnit, Role
from tests.integration.harness import StackClient, staff_token

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


async def test_openapi_describes_every_action_with_examples(client: StackClient) -> None:
    document = (await client.http.get(f"{client.complaints_url}/openapi.json")).json()

    paths = set(document["paths"])
    for action in (
        "dispatch",
        "accept",
        "acknowledge",
        "check",
        "contact",
        "rectify",
        "feedback",
        "close",
        "reopen",
        "callback",
        "pause",
        "resume",
        "escalate",
        "resolve-on-spot",
    ):
        assert f"/api/v1/complaints/{{complaint_id}}/{action}" in paths
    assert {"/api/v1/complaints", "/api/v1/halls", "/api/v1/inspections", "/api/v1/public/complaints/{number}"} <= paths
    schemas = document["components"]["schemas"]
    for name in ("ComplaintCreate", "HallCreate", "InspectionCreate"):
        assert schemas[name].get("examples"), name


async def test_fuzzing_every_endpoint_finds_no_server_error(client: StackClient) -> None:
    token = staff_token("fuzzer", OrgUnit(), Role.admin)
    for service in ("complaints", "projections"):
        url = client.stack.services[service].url
        result = await asyncio.to_thread(
            subprocess.run,
            [
                str(SCHEMATHESIS),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "15",
                "--header",
                f"Authorization: Bearer {token}",
                "--request-timeout",
                "10",
                "--seed",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-3000:]
