"""The published API description is complete, and fuzzing it finds no server error."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from services.scoring.policy import SCORING_POLICY_DIR
from shared.auth import Role
from shared.clock import period_of
from shared.organisation import OrgUnit
from tests.integration.harness import StackClient, bearer, complaint_body, staff_token

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
SERVICES = ("complaints", "escalation", "scoring", "projections")


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
    assert {"/api/v1/complaints", "/api/v1/halls", "/api/v1/inspections", "/api/v1/public/complaints/progress"} <= paths
    schemas = document["components"]["schemas"]
    for name in ("ComplaintCreate", "HallCreate", "InspectionCreate"):
        assert schemas[name].get("examples"), name


async def test_fuzzing_every_endpoint_finds_no_server_error_and_only_documented_answers(client: StackClient) -> None:
    token = staff_token("fuzzer", OrgUnit(), Role.admin)
    for service in SERVICES:
        url = client.stack.services[service].url
        result = await asyncio.to_thread(
            subprocess.run,
            [
                str(SCHEMATHESIS),
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                # Excluded, both by design: positive_data_acceptance (ST202) would have every schema-valid
                # request succeed, yet a valid id that names nothing is 404 and a step the loop does not allow
                # yet is 409; ignored_auth (ST401) wants 401 for every bad credential, yet after repeated
                # unknown API keys from one address the answer is 429 (shared/auth.py: the lockout).
                "--exclude-checks",
                "positive_data_acceptance,ignored_auth",
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


# --- hostile input to every operation of every service: a 4xx naming the field, never a 5xx ---

# ~250 targets (every parameter and body node of every operation) × 12: ~3,000 requests, about 40 s.
EXAMPLES_PER_TARGET = 12
FORBIDDEN_CHARACTERS = ["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x7f", "\x85", "\x9f", "\ud800"]
NON_FINITE = [float("nan"), float("inf"), float("-inf")]
EXTREME_INSTANTS = [
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00+14:00",
    "1999-12-31T23:59:59+00:00",
    "2101-01-01T00:00:00+00:00",
]
PATH_LIKE = ["../checklists/2026-01", "../../../../etc/passwd", "/etc/passwd", "2026-01/../2026-01", "..\\..\\win.ini"]
OVER_LONG = ["x" * 300, "长" * 5000, "9" * 5000]
HUGE_NUMBERS: list[object] = [1e308, -1e308, 2**63, -(2**63) - 1, 10**40]
ALLOWED_TEXT = st.text(
    st.characters(exclude_categories=("Cc", "Cs"), include_characters="\t\n\r"), min_size=1, max_size=20
)
WITH_CONTROL_CHARACTER = st.builds(
    lambda text, forbidden, at: text[:at] + forbidden + text[at:],
    ALLOWED_TEXT,
    st.sampled_from(FORBIDDEN_CHARACTERS),
    st.integers(0, 20),
)
HOSTILE = st.one_of(
    st.sampled_from(NON_FINITE),
    st.sampled_from(EXTREME_INSTANTS),
    WITH_CONTROL_CHARACTER,
    st.sampled_from(PATH_LIKE + OVER_LONG),
    st.sampled_from(HUGE_NUMBERS),
    ALLOWED_TEXT,  # unusual but allowed: may be accepted, must not break anything
)
# Header values httpx can send at all: printable ASCII.
HOSTILE_HEADER = st.sampled_from(["NaN", "Infinity", *EXTREME_INSTANTS, *PATH_LIKE, "x" * 300])


@dataclass(frozen=True)
class Operation:
    """One operation of a service's OpenAPI document, with the names of its parameters."""

    service: str
    method: str
    path: str
    parameters: dict[str, tuple[str, ...]]  # location (path, query, header) → names
    body: str | None  # the body's schema name

    @classmethod
    def all_of(cls, service: str, document: dict[str, Any]) -> list[Operation]:
        found = []
        for path, methods in document["paths"].items():
            for method, operation in methods.items():
                declared = operation.get("parameters", [])
                reference = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                found.append(
                    cls(
                        service,
                        method,
                        path,
                        {
                            where: tuple(p["name"] for p in declared if p["in"] == where)
                            for where in ("path", "query", "header")
                        },
                        reference["schema"]["$ref"].rsplit("/", 1)[-1] if reference else None,
                    )
                )
        return found


@dataclass(frozen=True)
class Target:
    """One place of one operation where a hostile value goes: a parameter, a body field, or the body itself."""

    operation: Operation
    location: str  # path, query, header, body, or extra (an undeclared query parameter)
    key: tuple[str | int, ...]

    def __str__(self) -> str:
        operation = self.operation
        where = ".".join(map(str, self.key))
        return f"{operation.service} {operation.method.upper()} {operation.path} {self.location} {where}"


def encoded(value: str) -> str:
    """Percent-encoded by hand, so lone surrogates and NUL reach the server as sent."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)  # nan → NaN, inf → Infinity


def keys_of(document: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """The key of every node of a JSON document, the root included."""
    children: Any = (
        document.items() if isinstance(document, dict) else enumerate(document) if isinstance(document, list) else ()
    )
    return [prefix] + [key for name, child in children for key in keys_of(child, (*prefix, name))]


def value_at(document: Any, key: tuple[str | int, ...]) -> Any:
    for part in key:
        document = document[part]
    return document


def replaced(document: Any, key: tuple[str | int, ...], value: object) -> Any:
    if not key:
        return value
    copy = json.loads(json.dumps(document))
    value_at(copy, key[:-1])[key[-1]] = value
    return copy


def is_instant(value: object) -> bool:
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        return False
    return True


class Fuzzer:
    """Sends each target of every operation hostile values, starting from a valid request built from seeds."""

    def __init__(self, urls: dict[str, str], seeds: Seeds, http: httpx.Client) -> None:
        self.urls = urls
        self.seeds = seeds
        self.http = http  # synchronous: Hypothesis drives it, in a thread
        self.sent = 0

    def targets(self, operation: Operation) -> list[Target]:
        missing = set(operation.parameters["path"]) - set(self.seeds.path)
        assert not missing, f"no valid {', '.join(missing)} to start from: add it to Seeds.registered"
        found = [Target(operation, "extra", ("unexpected",))]
        for location, names in operation.parameters.items():
            found += [Target(operation, location, (name,)) for name in names]
        if operation.body is not None:
            found += [Target(operation, "body", key) for key in keys_of(self.seeds.body(operation.body))]
        return found

    def baseline(self, target: Target, location: str) -> Any:
        if location == "body":
            return self.seeds.body(target.operation.body) if target.operation.body else None
        values = self.seeds.path if location == "path" else self.seeds.query
        return {name: values[name] for name in target.operation.parameters[location] if name in values}

    def send(self, target: Target, value: object) -> httpx.Response:
        path_values, query, body = (
            self.baseline(target, "path"),
            self.baseline(target, "query"),
            self.baseline(target, "body"),
        )
        headers = {}
        if target.location == "path":
            path_values[str(target.key[0])] = as_text(value)
        elif target.location in ("query", "extra"):
            query[str(target.key[0])] = as_text(value)
        elif target.location == "header":
            headers[str(target.key[0])] = as_text(value)
        else:
            body = replaced(body, target.key, value)
        path = target.operation.path.format_map({name: encoded(text) for name, text in path_values.items()})
        url = f"{self.urls[target.operation.service]}{path}?{'&'.join(f'{n}={encoded(v)}' for n, v in query.items())}"
        content = None if body is None else json.dumps(body)  # Python's JSON: NaN and Infinity as bare tokens
        if content is not None:
            headers["content-type"] = "application/json"
        self.sent += 1
        return self.http.request(target.operation.method, url, content=content, headers=headers)

    def must_refuse(self, target: Target, value: object) -> bool:
        """Whatever the field, these are never accepted: a control character, a non-finite number in a
        body, an extreme instant where an instant belongs. An undeclared parameter is ignored instead."""
        if target.location in ("extra", "header"):
            return False
        if isinstance(value, str):
            # Stripping may drop a control character that is also whitespace (U+000B, U+0085) at either end;
            # a URL cannot carry a lone surrogate at all (the server decodes it as U+FFFD).
            in_url = target.location in ("path", "query")
            forbidden = [c for c in FORBIDDEN_CHARACTERS if not (in_url and "\ud800" <= c <= "\udfff")]
            return any(character in value.strip() for character in forbidden)
        if isinstance(value, float) and not math.isfinite(value):
            return target.location == "body"
        if value in EXTREME_INSTANTS:
            baseline = self.baseline(target, target.location)
            original = value_at(baseline, target.key) if target.location == "body" else baseline.get(target.key[0])
            return is_instant(original)
        return False

    def mishandled(self, target: Target) -> str | None:
        """What went wrong with the hostile values Hypothesis sent to `target` (its smallest example), or None."""

        @seed(zlib.crc32(str(target).encode()))  # reproducible, yet each target draws its own values
        @settings(max_examples=EXAMPLES_PER_TARGET, deadline=None, database=None)
        @given(value=HOSTILE_HEADER if target.location == "header" else HOSTILE)
        def handled(value: object) -> None:
            response = self.send(target, value)
            assert response.status_code < 500, f"{value!r}: {response.status_code} {response.text[:300]}"
            if self.must_refuse(target, value):
                assert 400 <= response.status_code < 500, f"{value!r} accepted ({response.status_code})"
            if response.status_code == 422:
                problems = response.json()["detail"]
                assert all(set(problem) == {"loc", "msg", "type"} for problem in problems), problems

        try:
            handled()
        except Exception as failure:  # Hypothesis raises the smallest failing example's error; report every target's
            return f"{target}: {failure}"
        return None


@dataclass(frozen=True)
class Seeds:
    """Valid parameter values and bodies, from data registered for the run, by name."""

    path: dict[str, str]
    query: dict[str, str]
    bodies: dict[str, Any]

    def body(self, schema: str) -> Any:
        assert schema in self.bodies, f"no valid {schema} to start from: add one to Seeds.registered"
        return self.bodies[schema]

    @classmethod
    async def registered(cls, client: StackClient) -> Seeds:
        hall_id = await client.register_hall()
        registered = await client.post_complaint(complaint_body(hall_id))
        assert registered.status_code == 201, registered.text
        complaint = registered.json()
        photo = {"file": ("door.png", b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes, "image/png")}
        attachment = await client.http.post(f"{client.complaints_url}/api/v1/attachments", files=photo)
        assert attachment.status_code == 201, attachment.text
        attachment_id = attachment.json()["id"]
        finding = {"item_id": "A1", "description": "no greeting", "deadline": iso(client.now(), days=3)}
        inspection_body = {
            "hall_id": hall_id,
            "type": "self_check",
            "checklist_version": "2026-01",
            "failed_items": ["A1"],
            "findings": [{**finding, "attachments": [attachment_id]}],
            "innovation_rating": 0.5,
            "highlights": [{"description": "sign language at counter 3", "points": 1}],
        }
        inspected = await client.http.post(f"{client.complaints_url}/api/v1/inspections", json=inspection_body)
        assert inspected.status_code == 201, inspected.text
        inspection = inspected.json()
        [order_id] = inspection["rectification_orders"]
        surveyed = await client.post_complaint(complaint_body(hall_id))
        resolved = await client.step(surveyed.json()["id"], "resolve-on-spot")
        assert resolved.status_code == 200, resolved.text
        now = client.now()
        reason = {"reason": "called the customer back"}
        policy = json.loads((SCORING_POLICY_DIR / "2026-12.json").read_text())
        campaign = await client.http.post(
            f"{client.scoring_url}/api/v1/campaigns", json={**reason, "period": period_of(now), "scope": "group/广东"}
        )
        assert campaign.status_code == 201, campaign.text
        incident_body = {
            "cause": "fibre cut",
            "area": "group/广东/深圳",
            "category": "network_quality",
            "window_start": iso(now, days=-1),
            "window_end": iso(now),
        }
        incident = await client.http.post(f"{client.complaints_url}/api/v1/incidents", json=incident_body)
        assert incident.status_code == 201, incident.text
        return cls(
            path={
                "hall_id": hall_id,
                "complaint_id": complaint["id"],
                "number": complaint["number"],
                "inspection_id": inspection["id"],
                "order_id": order_id,
                "rectification_order_id": order_id,
                "campaign_id": campaign.json()["id"],
                "incident_id": incident.json()["id"],
                "token": resolved.json()["survey"]["token"],
                "attachment_id": attachment_id,
            },
            query={
                "phone_last_four": "5678",
                "from": iso(now, days=-2),
                "to": iso(now),
                "working_days": "5",
                "unit": f"group/广东/深圳/{hall_id}",
                "hall_id": hall_id,
                "status": "open",
                "category": "billing",
                "priority": "normal",
                "received_from": iso(now, days=-2),
                "received_to": iso(now, days=1),
                "limit": "10",
                "cursor": f"{iso(now)}|{complaint['id']}",
                "period": period_of(now),
                "scope": "group/广东",
                "as_of": iso(now),
                "incident": incident.json()["id"],
            },
            bodies={
                "HallCreate": {
                    "hall_id": f"FUZZ-{uuid.uuid4().hex[:8]}",
                    "name": "福田营业厅",
                    "province": "广东",
                    "city": "深圳",
                    "level": 1,
                    "ownership": "self_operated",
                },
                "ComplaintCreate": {
                    **complaint_body(hall_id),
                    "received_by": "SZ-COUNTER-3",
                    "received_at": iso(now, days=-1),
                },
                "StepBody": reason,
                "DispatchBody": {**reason, "to_unit": "group/广东/深圳"},
                "CheckBody": {
                    **reason,
                    "substantiated": True,
                    "root_cause": "billed twice",
                    "root_cause_class": "billing_system",
                    "responsible_unit": "group/广东/深圳",
                },
                "ContactBody": {**reason, "outcome": "reached"},
                "ReviewCheckBody": {**reason, "substantiated": False},
                "SurveyAnswer": {"satisfaction": "satisfied"},
                "RectifyBody": {
                    **reason,
                    "action": "refund",
                    "owner": "SZ-BILL",
                    "deadline": iso(now, days=3),
                    "evidence": ["ticket://BILL-881"],
                },
                "FeedbackBody": {**reason, "satisfaction": "satisfied"},
                "CallbackBody": {**reason, "outcome": "satisfied after the callback"},
                "EscalateBody": {**reason, "target_unit": "group/广东/深圳"},
                "PauseBody": {**reason, "reason_code": "awaiting_network_fix"},
                "ReclassifyBody": {**reason, "priority": "urgent"},
                "IncidentCreate": incident_body,
                "HallChangeBody": {**reason, "effective_from": iso(now, days=1), "level": 2},
                "ChildrenChange": {**reason, "add": [complaint["id"]]},
                "BulkResultBody": {
                    **reason,
                    "action": "fibre spliced",
                    "owner": "NOC",
                    "evidence": ["ticket://NOC-1"],
                    "attachments": [attachment_id],
                },
                "InspectionCreate": inspection_body,
                "OrderRectifyBody": {**reason, "report": "greeter posted", "evidence": ["photo://door"]},
                "WhatIfRequest": {"policy": {**policy, "version": "draft"}},
                "AppealDecisionBody": {**reason, "upheld": True},
                "OpenCampaign": {**reason, "period": period_of(now), "scope": "group/广东/深圳"},
                "SelfAssessment": {**reason, "hall_id": hall_id, "claimed_grade": "good"},
                "CityCertification": {**reason, "city": "group/广东/深圳", "meets": [hall_id], "nominated": []},
                "ProvinceReview": {**reason, "province": "group/广东", "good": [], "nominated": []},
                "GroupCertification": {**reason, "excellent": []},
                "Closing": reason,
                "ProgressQuery": {"number": complaint["number"], "phone_last_four": "5678"},
                "ErasureRequest": {**reason, "complaint_numbers": [complaint["number"]]},
                "PublishRequest": {**reason, "period": period_of(now), "scope": "group/广东"},
            },
        )


def iso(instant: datetime, days: float = 0) -> str:
    return (instant + timedelta(days=days)).isoformat()


async def test_hostile_input_to_every_endpoint_of_every_service_is_never_a_server_error(client: StackClient) -> None:
    seeds = await Seeds.registered(client)
    urls = {service: client.stack.services[service].url for service in SERVICES}
    operations = [
        operation
        for service, url in urls.items()
        for operation in Operation.all_of(service, (await client.http.get(f"{url}/openapi.json")).json())
    ]
    assert {operation.service for operation in operations} == set(SERVICES)

    with httpx.Client(headers=bearer(staff_token("fuzzer", OrgUnit(), Role.admin)), timeout=10) as http:
        fuzzer = Fuzzer(urls, seeds, http)
        targets = [target for operation in operations for target in fuzzer.targets(operation)]
        failures = await asyncio.to_thread(
            lambda: [fault for target in targets if (fault := fuzzer.mishandled(target))]
        )

    assert not failures, "\n".join(failures)
    assert fuzzer.sent >= EXAMPLES_PER_TARGET * len(targets) / 2, "most targets were not driven"
