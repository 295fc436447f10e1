"""OpenTelemetry tracing, off by default: `OTEL_TRACES_EXPORTER=otlp` (or `TRACES_EXPORTER`) sends spans over
OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`; `console` writes them as JSON to stdout. The SDK's other standard
variables apply as it defines them (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`,
`OTEL_EXPORTER_OTLP_HEADERS`, ...). A request carrying a W3C `traceparent` continues the caller's trace.
Kafka spans follow the messaging semantic conventions: `send <topic>` by the relay, `process <topic>` by a
consumer, with `messaging.*` attributes.

A complaint's trace runs from its HTTP request through the relay into every consumer. The relay
publishes later, maybe from another replica, so the trace context of the request that stored an
event is stored beside it (`event_trace_contexts`) and travels on in the Kafka message's
`traceparent` header; a consumer's span continues it, and so do the events the consumer stores.

Spans carry route templates, methods, status codes and event types: never query strings,
bodies or headers, which may hold a customer's name or phone.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import Recording
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import StatusCode
from psycopg import sql
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.application import ServiceApplication
from shared.database import Connection
from shared.metrics import route_template

logger = logging.getLogger(__name__)
# FastAPI's own telemetry puts query strings, and validation failures with the values sent, into spans and logs:
# a customer's phone among them. Our server span (`SpanPerRequest`) carries the route template only.
NO_FASTAPI_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
TracesExporter = Literal["none", "console", "otlp"]
Headers = Sequence[tuple[str, bytes]]
_enabled = False


def setup_tracing(service_name: str, exporter: TracesExporter) -> None:
    global _enabled
    if exporter == "none":
        return
    if exporter == "otlp":
        # Imported only when used: it is a tenth of a service's start-up.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter: SpanExporter = OTLPSpanExporter()
    else:
        span_exporter = ConsoleSpanExporter()
    # The SDK takes OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES itself; the name given here only stands in.
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter, schedule_delay_millis=200))
    trace.set_tracer_provider(provider)
    _enabled = True


class SpanPerRequest:
    """A server span per HTTP request, named by its route template. Plain ASGI, like `MeasureRequests`."""

    def __init__(self, app: ASGIApp, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.app = app
        self.tracer = trace.get_tracer("shared.tracing", tracer_provider=tracer_provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _enabled:  # with no exporter a span is work for nobody
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        with self.tracer.start_as_current_span(
            method, context=caller_context(scope), kind=trace.SpanKind.SERVER
        ) as span:

            async def send_noting_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:  # a 4xx is the caller's error, not the server's span's
                        span.set_status(StatusCode.ERROR)
                await send(message)

            try:
                await self.app(scope, receive, send_noting_status)
            finally:
                template = route_template(scope)
                span.update_name(f"{method} {template}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", template)


def caller_context(scope: Scope) -> Context | None:
    """The trace context of the request's `traceparent` and `tracestate` headers (W3C), if it sent them; else
    None: the current context."""
    carrier = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in (b"traceparent", b"tracestate")
    }
    return propagate.extract(carrier) if carrier else None


def trace_requests(app: FastAPI) -> None:
    app.add_middleware(SpanPerRequest)


def current_traceparent(context: Context | None = None) -> str | None:
    """The trace context current now, or in `context`."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier.get("traceparent")


def traceparent_of(span: trace.Span) -> str | None:
    """The trace context of `span`, to be carried on by what it causes."""
    return current_traceparent(trace.set_span_in_context(span)) if _enabled else None


def traced_events(
    aggregate: Aggregate, already_pending: int, traceparent: str | None
) -> list[tuple[DomainEventProtocol[uuid.UUID], str]]:
    """The events `aggregate` has pending beyond the first `already_pending`, each with `traceparent`, for
    `StoresTraceContext.save_traced` (none without a trace context)."""
    if traceparent is None:
        return []
    return [(event, traceparent) for event in aggregate.pending_events[already_pending:]]


def context_of(traceparent: str | None) -> Context | None:
    return propagate.extract({"traceparent": traceparent}) if traceparent else None


def tracing_enabled() -> bool:
    return _enabled


def traced_traceparent() -> str | None:
    """The trace context to store beside what is saved now; None while this process does not trace, whose
    requests then have no context of their own (`SpanPerRequest` passes them through)."""
    return current_traceparent() if _enabled else None


def traceparent_header(stored: str | None) -> list[tuple[str, bytes]]:
    """The `traceparent` header of a message sent now, in the span that continues `stored`; a process that does
    not trace makes no span, and the stored context travels on as it is."""
    traceparent = current_traceparent() if _enabled else stored
    return [("traceparent", traceparent.encode())] if traceparent else []


def context_from_headers(headers: Headers) -> Context:
    carrier = {name: value.decode(errors="replace") for name, value in headers if name == "traceparent"}
    return propagate.extract(carrier)


TRACE_CONTEXT_NOT_STORED = "trace context not stored; the events' traces will end at the relay"


def trace_context_upsert(schema: str, *placeholders: str) -> str:
    """The statement storing one event's trace context: originator id, version, traceparent, in the driver's
    placeholders."""
    return (
        sql.SQL(
            "INSERT INTO {}.event_trace_contexts (originator_id, originator_version, traceparent) VALUES ({})"
            " ON CONFLICT (originator_id, originator_version)"
            " DO UPDATE SET traceparent = EXCLUDED.traceparent, stored_at = now()"
        )
        .format(sql.Identifier(schema), sql.SQL(", ").join(sql.SQL(placeholder) for placeholder in placeholders))
        .as_string()
    )


async def store_trace_contexts_on(
    connection: Connection, schema: str, traced: Sequence[tuple[DomainEventProtocol[uuid.UUID], str]]
) -> None:
    """`StoresTraceContext.store_trace_contexts` through asyncpg, for a service that commits on its event loop;
    in a transaction of its own, before the events'."""
    rows = [(event.originator_id, event.originator_version, traceparent) for event, traceparent in traced]
    if not rows:
        return
    try:
        async with connection.transaction():
            await connection.execute("SET LOCAL synchronous_commit TO OFF")
            # Row by row: two requests with one idempotency key put the same event twice in a batch.
            await connection.executemany(trace_context_upsert(schema, "$1", "$2", "$3"), rows)
    except Exception:
        logger.warning(TRACE_CONTEXT_NOT_STORED, exc_info=True)


class StoresTraceContext(ServiceApplication):
    """An application that stores, beside each event it saves, the trace context it was saved in.

    Stored before the events, so the relay, woken by their commit, finds it; a failure to store
    it is logged and never fails the save: tracing must not cost a business write.
    """

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[uuid.UUID]]:
        if (traceparent := traced_traceparent()) is not None:
            events = (event for obj in objs for event in (obj.pending_events if isinstance(obj, Aggregate) else [obj]))
            self.store_trace_contexts((event, traceparent) for event in events)
        return super().save(*objs, **kwargs)

    def save_traced(
        self, aggregates: Sequence[Aggregate], traced: Iterable[tuple[DomainEventProtocol[uuid.UUID], str]]
    ) -> list[Recording[uuid.UUID]]:
        """Saves the aggregates, with the trace context given for each event in `traced` rather than the
        current one: a batch holds events of many traces."""
        self.store_trace_contexts(traced)
        return super().save(*aggregates)

    def store_trace_contexts(self, traced: Iterable[tuple[DomainEventProtocol[uuid.UUID], str]]) -> None:
        """Stores each event's trace context, in one statement for all of them."""
        rows = [(event.originator_id, event.originator_version, traceparent) for event, traceparent in traced]
        if not rows:
            return
        datastore = self.recorder.datastore  # type: ignore[attr-defined]
        try:
            with (
                datastore.pool.connection() as connection,
                connection.transaction(),
                connection.cursor() as cursor,
            ):
                cursor.execute("SET LOCAL synchronous_commit TO OFF")  # telemetry: not worth a disk flush
                cursor.executemany(trace_context_upsert(datastore.schema, "%s", "%s", "%s"), rows)
        except Exception:
            logger.warning(TRACE_CONTEXT_NOT_STORED, exc_info=True)
