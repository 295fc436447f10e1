"""A real Prometheus scrapes the stack while complaints meet and breach their first-response limit:
the attainment it computes is the scenario's, a breach in progress shows before it is answered, and
every query of every Grafana panel runs and returns data (PostgreSQL's, as CloudNativePG names them, from
Debian's prometheus-postgres-exporter; the Kafka exporter's run but need not)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from devstack import postgres_exporter, prometheus
from devstack.stack import Stack
from tests.dashboard_queries import KAFKA_EXPORTER, dashboard_queries, metric_names
from tests.integration.harness import StackClient, complaint_body, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert prometheus.installed(), "needs Debian's prometheus: apt-get install prometheus (.ci/run does)"
    assert postgres_exporter.installed(), "needs Debian's prometheus-postgres-exporter (make prometheus-tools)"
    yield from running_stack(tmp_path_factory, {}, prometheus_interval="1s", notifications=True)


async def query(client: StackClient, expr: str) -> list[dict[str, Any]]:
    assert client.stack.prometheus is not None
    response = await client.http.get(f"{client.stack.prometheus.url}/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def value_when(client: StackClient, expr: str, wanted: float, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while True:
        result = await query(client, expr)
        value = float(result[0]["value"][1]) if result else None
        if value == wanted or time.monotonic() > deadline:
            assert value == wanted, f"{expr} = {value}, wanted {wanted}"
            return value
        await asyncio.sleep(0.5)


async def complaint(client: StackClient, hall_id: str, *steps: tuple[str, dict[str, Any]]) -> str:
    response = await client.post_complaint(complaint_body(hall_id))
    assert response.status_code == 201, response.text
    complaint_id: str = response.json()["id"]
    for action, body in steps:
        assert (await client.step(complaint_id, action, body)).status_code == 200, action
    return complaint_id


async def test_prometheus_computes_the_scenarios_attainment_and_every_panel_has_data(client: StackClient) -> None:
    hall_id = await client.register_hall()
    closed = [("resolve-on-spot", {}), ("feedback", {"satisfaction": "satisfied"}), ("close", {})]
    for _ in range(2):
        await complaint(client, hall_id, *closed)
    await complaint(client, hall_id, ("acknowledge", {}))
    late = await complaint(client, hall_id)

    # Past the late one's first-response limit (one working day): warned, then breached, still open.
    clocks = await client.clocks(late)
    [response_clock] = [c for c in clocks["clocks"] if c["name"] == "first_response"]
    client.move_clock_to(datetime.fromisoformat(response_clock["deadline"]) + timedelta(minutes=2))
    await value_when(client, 'sum(complaints_overdue{clock="first_response"})', 1)
    assert (await client.step(late, "acknowledge", {})).status_code == 200
    await value_when(client, 'sum(complaints_overdue{clock="first_response"})', 0)

    # Three of four answered within the limit, both closures within theirs.
    await value_when(client, "sum(complaints_first_responded_total)", 4)
    attainment = 'sum(complaints_first_responded_total{sla="met"}) / sum(complaints_first_responded_total)'
    assert await value_when(client, attainment, 0.75) == 0.75
    at_the_limit = (
        'sum(complaint_first_response_working_seconds_bucket{priority="normal", le="32400.0"})'
        " / sum(complaint_first_response_working_seconds_count)"
    )
    assert await value_when(client, at_the_limit, 0.75) == 0.75
    await value_when(client, 'sum(complaints_resolved_total{sla="met"}) / sum(complaints_resolved_total)', 1)
    await value_when(client, 'sum(sla_milestones_total{clock="first_response", milestone="breach"})', 1)

    await asyncio.sleep(3)  # a few more scrapes, so rates over the last minute have two samples
    empty, failed = [], []
    for dashboard, panel, expr in dashboard_queries():
        # No Kafka exporter runs in the local stack: Strimzi's kafka-exporter is not packaged for Debian or PyPI.
        # Its queries must still be valid PromQL.
        may_be_empty = metric_names(expr) <= KAFKA_EXPORTER
        try:
            if not await query(client, expr) and not may_be_empty:
                empty.append(f"{dashboard} / {panel}: {expr}")
        except AssertionError as error:
            failed.append(str(error))
    assert not failed, "\n".join(failed)
    assert not empty, "panels without data:\n" + "\n".join(empty)
