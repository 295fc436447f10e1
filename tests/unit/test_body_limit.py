"""Bodies are bounded and read only for authenticated callers (shared/body_limit.py), on a real ASGI app."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.types import Message

from shared.auth import Authenticator, AuthSettings, Caller, Principal, Role, issue_staff_token
from shared.body_limit import guard_request_bodies
from shared.errors import install_error_handlers
from shared.organisation import OrgUnit

LIMIT = 4096
SETTINGS = AuthSettings(environment="development")
TOKEN = issue_staff_token(SETTINGS, "qm-1", OrgUnit(), [Role.quality_manager], timedelta(hours=1))


def app() -> FastAPI:
    service = FastAPI()
    service.state.authenticator = Authenticator(SETTINGS, audience="complaints")

    @service.post("/api/v1/things")
    async def things(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"caller": caller.subject, "keys": sorted(body)}

    @service.post("/api/v1/public/answers")
    async def answers(body: dict[str, Any]) -> dict[str, Any]:
        return {"keys": sorted(body)}

    install_error_handlers(service)
    guard_request_bodies(service, LIMIT)
    return service


async def call(
    path: str, chunks: list[bytes], headers: dict[str, str], *, service: FastAPI | None = None
) -> tuple[int, dict[str, Any], int]:
    """Sends the request through the whole app (`app()` unless given); returns the status, the JSON answer
    and the chunks read."""
    service = service or app()
    pending = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        read += 1
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (name.lower().encode(), value.encode())
            for name, value in {"content-type": "application/json", **headers}.items()
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await service(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


BEARER = {"authorization": f"Bearer {TOKEN}"}


async def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read() -> None:
    status, body, read = await call("/api/v1/things", [b"{}"], {"content-length": str(300 * 2**20)})
    assert (status, read) == (413, 0)
    assert body["detail"][0]["type"] == "too_large" and body["detail"][0]["loc"] == ["body"]


async def test_no_credentials_is_a_401_before_the_body_is_read_even_if_it_is_malformed() -> None:
    status, body, read = await call("/api/v1/things", [b"{not json"], {"content-length": "9"})
    assert (status, read) == (401, 0)
    assert body["detail"][0]["loc"] == ["header", "Authorization"]


async def test_a_chunked_body_is_read_up_to_the_limit_and_no_further() -> None:
    chunks = [b"x" * 1024] * 10
    status, _, read = await call("/api/v1/things", chunks, BEARER)
    assert status == 413 and read == LIMIT // 1024 + 1  # the chunk that crossed it, then no more


@pytest.mark.parametrize("split", [1, 3])
async def test_a_body_within_the_limit_reaches_the_route_whole(split: int) -> None:
    payload = json.dumps({"a": 1, "b": "x" * 2000}).encode()
    size = len(payload) // split + 1
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)]
    status, body, _ = await call("/api/v1/things", chunks, BEARER)
    assert (status, body) == (200, {"caller": "qm-1", "keys": ["a", "b"]})


async def test_public_routes_take_no_credentials_but_keep_the_limit() -> None:
    assert (await call("/api/v1/public/answers", [b'{"ok": true}'], {}))[:2] == (200, {"keys": ["ok"]})
    assert (await call("/api/v1/public/answers", [b"{}"], {"content-length": str(LIMIT + 1)}))[0] == 413


class CountingAuthenticator(Authenticator):
    checks = 0

    def authenticate(self, headers: Mapping[str, str], client: str | None = None) -> Principal:
        self.checks += 1
        return super().authenticate(headers, client)


async def test_the_route_takes_the_caller_the_guard_found_without_authenticating_again() -> None:
    service = app()
    service.state.authenticator = authenticator = CountingAuthenticator(SETTINGS, audience="complaints")

    status, body, _ = await call("/api/v1/things", [b'{"a": 1}'], BEARER, service=service)

    assert (status, body) == (200, {"caller": "qm-1", "keys": ["a"]})
    assert authenticator.checks == 1
