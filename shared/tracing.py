"""OpenTelemetry tracing: off by default; `TRACES_EXPORTER=console` writes spans as JSON to stdout.

Spans carry route templates, methods, status codes and event types: never query
strings, bodies or headers, which may hold a customer's name or phone.
OTLP export and trace propagation through Kafka headers come with the operations work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import FastAPI, Request, Response
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

TracesExporter = Literal["none", "console"]


def setup_tracing(service_name: str, exporter: TracesExporter) -> None:
    if exporter == "none":
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(), schedule_delay_millis=200))
    trace.set_tracer_provider(provider)


def trace_requests(app: FastAPI) -> None:
    tracer = trace.get_tracer("shared.tracing")

    @app.middleware("http")
    async def span_per_request(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        with tracer.start_as_current_span(request.method, kind=trace.SpanKind.SERVER) as span:
            response = await call_next(request)
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            span.update_name(f"{request.method} {template}")
            span.set_attribute("http.request.method", request.method)
            span.set_attribute("http.route", template)
            span.set_attribute("http.response.status_code", response.status_code)
            return response
