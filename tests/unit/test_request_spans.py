"""A request's server span continues the caller's W3C trace context and marks server errors, on the real SDK."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import tracing

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def answering(status: int) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def request_span(
    status: int, headers: list[tuple[bytes, bytes]], monkeypatch: pytest.MonkeyPatch
) -> ReadableSpan:
    monkeypatch.setattr(tracing, "_enabled", True)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    middleware = tracing.SpanPerRequest(answering(status), tracer_provider=provider)
    scope: Scope = {"type": "http", "method": "GET", "path": "/api/v1/things", "headers": headers}

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(_: Message) -> None:
        pass

    await middleware(scope, receive, send)
    (span,) = exporter.get_finished_spans()
    return span


async def test_a_request_with_a_traceparent_continues_the_callers_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01".encode()

    span = await request_span(200, [(b"traceparent", traceparent)], monkeypatch)

    assert span.kind is SpanKind.SERVER
    assert f"{span.context.trace_id:032x}" == CALLER_TRACE
    assert span.parent is not None and f"{span.parent.span_id:016x}" == CALLER_SPAN
    assert span.status.status_code is StatusCode.UNSET


async def test_a_request_without_one_starts_a_trace_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    span = await request_span(200, [(b"traceparent", b"not-a-trace-context")], monkeypatch)

    assert span.parent is None and f"{span.context.trace_id:032x}" != CALLER_TRACE


@pytest.mark.parametrize(("status", "error"), [(500, True), (503, True), (404, False), (409, False)])
async def test_a_server_error_marks_the_span_and_a_callers_error_does_not(
    status: int, error: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    span = await request_span(status, [], monkeypatch)

    assert (span.status.status_code is StatusCode.ERROR) is error
    assert span.attributes is not None and span.attributes["http.response.status_code"] == status


def test_an_untraced_relay_passes_the_stored_trace_context_on_as_it_is() -> None:
    stored = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"

    assert tracing.traceparent_header(stored) == [("traceparent", stored.encode())]
    assert tracing.traceparent_header(None) == []


def test_an_untraced_process_stores_no_trace_context_with_what_it_saves() -> None:
    assert tracing.traced_traceparent() is None
