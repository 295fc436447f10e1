"""Prometheus metrics at `/metrics`: request counts and durations by route template and status.

Labels are route templates, methods, statuses and outcomes only: never ids, numbers, names
or phones, which would both leak personal data and make the series unbounded.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "http_server_requests", "HTTP requests answered, by route template and status.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMED = Counter("consumer_events", "Events a consumer received, by outcome.", ["consumer", "outcome"])
CONSUMER_DELAY = Histogram(
    "consumer_event_delay_seconds",
    "From an event's occurrence to its being applied by the consumer (for projections: how stale the read side is).",
    ["consumer"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
PUBLISHED = Counter("relay_published_events", "Stored events a relay published to the broker.", ["relay"])
RELAY_LAG = Gauge("relay_lag_events", "Stored events the relay has not published yet.", ["relay"])
CONSUMER_LAG = Gauge(
    "consumer_lag_messages", "Messages on the topic the consumer group has not committed yet.", ["consumer", "topic"]
)
COMPLAINTS_REGISTERED = Counter(
    "complaints_registered", "Complaints registered (repeats not counted).", ["channel", "category", "priority"]
)
SLA_MILESTONES = Counter(
    "sla_milestones",
    "SLA warnings, breaches and escalations fired, by clock and level.",
    ["clock", "milestone", "level"],
)


def instrument(app: FastAPI) -> None:
    """Counts and times every request, and serves `/metrics`."""

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_DURATION.labels(request.method, route).observe(time.perf_counter() - started)
        return response
