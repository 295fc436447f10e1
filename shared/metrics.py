"""Prometheus metrics at `/metrics`: request counts and durations by route template and status.

Labels are route templates, methods, statuses and outcomes only: never ids, numbers, names
or phones, which would both leak personal data and make the series unbounded.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
RELAY_PUBLISH_FAILURES = Counter(
    "relay_publish_failures", "Batches a relay could not publish (broker unreachable or refusing), retried.", ["relay"]
)
RELAY_LAG = Gauge("relay_lag_events", "Stored events the relay has not published yet.", ["relay"])
CONSUMER_LAG = Gauge(
    "consumer_lag_messages", "Messages on the topic the consumer group has not committed yet.", ["consumer", "topic"]
)
NOTIFICATIONS = Counter(
    "customer_notifications",
    "Notifications to customers by channel and template: sent, failed for good, retried, or held for quiet hours.",
    ["channel", "template", "outcome"],
)
COMPLAINTS_REGISTERED = Counter(
    "complaints_registered",
    "Complaints registered (idempotent replays not counted).",
    ["channel", "category", "priority"],
)
COMPLAINTS_REPEATED = Counter(
    "complaints_repeat",
    "Complaints from a customer who complained before within the repeat window (重复投诉).",
    ["province", "category"],
)
SLA_MILESTONES = Counter(
    "sla_milestones",
    "SLA warnings, breaches and escalations fired, by clock and level.",
    ["clock", "milestone", "level"],
)


def route_template(scope: Scope) -> str:
    """The template of the route that answered (`/api/v1/complaints/{complaint_id}`), never the path itself."""
    return getattr(scope.get("route"), "path", "unmatched")


class MeasureRequests:
    """Counts and times each HTTP request. Plain ASGI: Starlette's `BaseHTTPMiddleware` costs a task
    and a stream per request, which profiling showed as a large share of intake's time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before starting a response

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = route_template(scope)
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_DURATION.labels(scope["method"], route).observe(time.perf_counter() - started)


def instrument(app: FastAPI) -> None:
    """Counts and times every request, and serves `/metrics`."""

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(MeasureRequests)
