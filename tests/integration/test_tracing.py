"""One complaint, one trace: from the POST through the relay and Kafka headers into every consumer,
exported over OTLP/HTTP to a receiver the test runs (standing in for an OpenTelemetry collector)."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from devstack.process import free_port
from devstack.stack import Stack
from services.complaints.main import SCHEMA as COMPLAINTS_SCHEMA
from shared.database import create_pool
from shared.relay import TRACE_CONTEXT_RETENTION, RelayPositions
from shared.topics import COMPLAINTS_EVENTS, SCORING_EVENTS
from tests.integration.harness import StackClient, complaint_body, running_stack


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    parent_span_id: str
    attributes: dict[str, str]


class OtlpReceiver(ThreadingHTTPServer):
    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), OtlpHandler)
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()

    def receive(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                with self.lock:
                    self.spans.extend(
                        ReceivedSpan(
                            attributes.get("service.name", "?"),
                            span.name,
                            span.trace_id.hex(),
                            span.parent_span_id.hex(),
                            {a.key: a.value.string_value for a in span.attributes},
                        )
                        for span in scope_spans.spans
                    )


class OtlpHandler(BaseHTTPRequestHandler):
    server: OtlpReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.receive(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver(free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[Stack]:
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
    yield from running_stack(tmp_path_factory, {"TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})


async def test_one_trace_spans_the_post_the_relay_and_every_consumer(
    client: StackClient, receiver: OtlpReceiver
) -> None:
    response = await client.post_complaint(complaint_body(await client.register_hall()))
    assert response.status_code == 201, response.text
    deadline = time.monotonic() + 30
    while not (posts := {s.trace_id for s in receiver.spans if s.name == "POST /api/v1/complaints"}):
        assert time.monotonic() < deadline, "the POST's span never arrived"
        await asyncio.sleep(0.2)
    [trace_id] = posts

    wanted = {
        ("complaints", "POST /api/v1/complaints"),
        ("complaints", f"send {COMPLAINTS_EVENTS}"),
        ("escalation", f"process {COMPLAINTS_EVENTS}"),
        ("scoring", f"process {COMPLAINTS_EVENTS}"),
        ("scoring", f"send {SCORING_EVENTS}"),  # the score change the registration caused
        ("projections", f"process {COMPLAINTS_EVENTS}"),
        ("projections", f"process {SCORING_EVENTS}"),
    }
    while not wanted <= (seen := {(s.service, s.name) for s in receiver.spans if s.trace_id == trace_id}):
        assert time.monotonic() < deadline, f"missing from the trace: {wanted - seen}"
        await asyncio.sleep(0.5)
    kafka_spans = [s for s in receiver.spans if s.trace_id == trace_id and s.name.startswith(("send ", "process "))]
    for span in kafka_spans:
        operation, topic = span.name.split(" ")
        assert span.attributes["messaging.system"] == "kafka"
        assert span.attributes["messaging.operation.type"] == operation
        assert span.attributes["messaging.destination.name"] == topic
    consumed = {s.attributes.get("cloudevents.event_type") for s in kafka_spans if s.name.startswith("process ")}
    assert consumed >= {"ComplaintRegistered", "ScoreRecalculated"}
    assert not [s for s in receiver.spans if "url.query" in s.attributes or s.name.startswith("fastapi.")]


async def test_a_request_carrying_a_traceparent_continues_the_callers_trace(
    client: StackClient, receiver: OtlpReceiver
) -> None:
    caller_trace, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    response = await client.http.get(
        f"{client.complaints_url}/api/v1/complaints/{uuid.uuid4()}",
        headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
    )
    assert response.status_code == 404
    deadline = time.monotonic() + 30
    while not (spans := [s for s in receiver.spans if s.trace_id == caller_trace]):
        assert time.monotonic() < deadline, "no span continued the caller's trace"
        await asyncio.sleep(0.2)
    (server,) = [s for s in spans if s.name == "GET /api/v1/complaints/{complaint_id}"]
    assert (server.service, server.parent_span_id) == ("complaints", caller_span)
    assert {s.service for s in spans} == {"complaints"}


async def test_trace_contexts_a_day_old_are_forgotten(client: StackClient) -> None:
    """The relay needs one only until it has published the event; it forgets them hourly."""
    stale, fresh = uuid.uuid4(), uuid.uuid4()
    await client.database.executemany(
        "INSERT INTO complaints.event_trace_contexts VALUES ($1, 1, 'trace', now() - $2::interval)",
        [(stale, timedelta(days=1, minutes=1)), (fresh, timedelta(hours=23))],
    )
    pool = await create_pool(client.stack.database_url, COMPLAINTS_SCHEMA, max_size=1)
    try:
        forgotten = await RelayPositions(pool).forget_trace_contexts(TRACE_CONTEXT_RETENTION)
    finally:
        await pool.close()

    kept = await client.database.fetch(
        "SELECT originator_id FROM complaints.event_trace_contexts WHERE originator_id = ANY($1)", [stale, fresh]
    )
    assert forgotten == 1
    assert [row["originator_id"] for row in kept] == [fresh]


async def test_every_services_log_is_json_lines_and_a_line_within_a_request_names_its_trace(
    client: StackClient,
) -> None:
    caller_trace = uuid.uuid4().hex
    traced = {"traceparent": f"00-{caller_trace}-{uuid.uuid4().hex[:16]}-01", "Authorization": "Bearer forged"}
    refused = await client.http.get(f"{client.complaints_url}/api/v1/complaints/{uuid.uuid4()}", headers=traced)
    assert refused.status_code == 401

    logs = client.stack.config.data_dir / "logs"
    for service in ("complaints", "escalation", "scoring", "projections"):
        lines = [json.loads(line) for line in (logs / f"{service}.log").read_text().splitlines() if line.strip()]
        assert lines, service
        assert {line["service"] for line in lines} == {service}
        assert all(line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") for line in lines), service
    complaints = [json.loads(line) for line in (logs / "complaints.log").read_text().splitlines() if line.strip()]
    assert any(line.get("trace_id") == caller_trace for line in complaints)
