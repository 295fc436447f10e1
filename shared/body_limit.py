"""Request bodies are bounded, and read only for authenticated callers: an ASGI middleware on every service.

FastAPI reads a request's whole body before its dependencies run, so without this a caller with no
credentials could make a service parse megabytes (and get a 422 for malformed JSON, not the 401 it
deserves). Here, before the application sees a request with a body:
- a `Content-Length` beyond the limit is refused with 413 before any byte is read;
- the caller's credentials are checked, as the routes' `Caller` checks them (401 otherwise), except
  on the public routes (`/api/v1/public/...`), which take none; `Caller` then takes the caller found here;
- a body sent without a length (chunked) is read up to the limit and refused with 413 beyond it.
The body read is then handed to the application as it came.

A route that reads its own body as it arrives (an upload streamed to disk) is named in `streamed`, with the
largest `Content-Length` it may declare: its credentials are checked the same way, and then its body is left
unread, for the route to bound itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import Authenticator, TooManyKeyFailures, Unauthenticated, remember_caller
from shared.errors import error_body

PUBLIC_PREFIX = "/api/v1/public/"
METHODS_WITH_BODIES = frozenset({"POST", "PUT", "PATCH"})


def guard_request_bodies(app: Starlette, max_bytes: int, streamed: Mapping[str, int] | None = None) -> None:
    """Call before the tracing and metrics middleware are added, so that they see these answers too.
    `streamed`: the paths whose routes read and bound their bodies themselves, each with its own limit."""
    app.add_middleware(GuardedBodies, max_bytes=max_bytes, streamed=dict(streamed or {}))


class RequestTooLarge(Exception):
    pass


class GuardedBodies:
    def __init__(self, app: ASGIApp, max_bytes: int, streamed: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = dict(streamed or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS_WITH_BODIES:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        streamed_limit = self.streamed.get(scope["path"])
        limit = self.max_bytes if streamed_limit is None else streamed_limit
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _answer(send, 413, self._too_large(limit))
            return
        if not scope["path"].startswith(PUBLIC_PREFIX):
            authenticator: Authenticator = scope["app"].state.authenticator
            client = scope.get("client")
            try:
                remember_caller(scope, authenticator.authenticate(headers, client[0] if client else None))
            except (Unauthenticated, TooManyKeyFailures) as refused:
                body = error_body(refused.field, str(refused), refused.error_type)
                await _answer(send, refused.status_code, body, {name.lower(): v for name, v in refused.headers.items()})
                return
        if streamed_limit is not None:
            await self.app(scope, receive, send)
            return
        try:
            chunks = await self._read(receive)
        except RequestTooLarge:
            await _answer(send, 413, self._too_large(self.max_bytes))
            return
        await self.app(scope, _replaying(chunks, receive), send)

    async def _read(self, receive: Receive) -> list[Message]:
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages  # the client went away: the application learns it as it would have
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                raise RequestTooLarge
            if not message.get("more_body", False):
                return messages

    def _too_large(self, limit: int) -> dict[str, object]:
        return error_body(("body",), f"the request body is larger than {limit} bytes", "too_large")


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


async def _answer(send: Send, status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> None:
    content = json.dumps(body, ensure_ascii=False).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    raw_headers += [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    # The body is not read: the connection is closed after the answer rather than drained.
    raw_headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": content})
