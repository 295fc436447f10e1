"""Read models on PostgreSQL alone, fed through the projections' handlers: the SLA gauges count from
escalation's verdicts, and the rebuild compares every table the projections keep."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from devstack.postgres import EmbeddedPostgres
from services.escalation.tracking import sla_subject_id
from services.projections import sla_gauges
from services.projections.main import OWN_MIGRATIONS, handlers
from services.projections.rebuild import READ_MODELS
from shared.clock import CHINA_TIME
from shared.contracts import (
    ComplaintAcknowledgedV1,
    ComplaintCheckedV1,
    ComplaintRegisteredV2,
    Contract,
    SlaBreachedV1,
    SlaClockStoppedV1,
    build_event,
)
from shared.database import create_pool
from shared.migrations import migrate_schema

RECEIVED_AT = datetime(2026, 11, 16, 9, tzinfo=CHINA_TIME)
BREACHED_AT = RECEIVED_AT + timedelta(hours=2)


@pytest.fixture
async def read_models(postgres: EmbeddedPostgres) -> AsyncIterator[asyncpg.Pool]:
    """A schema of its own per test, migrated as the projections service migrates its own."""
    schema = f"read_models_{uuid.uuid4().hex[:12]}"
    pool = await create_pool(postgres.url, schema)
    await migrate_schema(postgres.url, schema, [OWN_MIGRATIONS])
    try:
        yield pool
    finally:
        await pool.close()


class Complaint:
    """One complaint's events, and escalation's about it, as the projections receive them."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.id = uuid.uuid4()
        self.priority = f"test-{uuid.uuid4().hex[:8]}"  # its own gauge series
        self.versions = {self.id: 0, sla_subject_id(self.id): 0}

    async def receive(self, payload: Contract, source: str = "complaints") -> None:
        aggregate_id = self.id if source == "complaints" else sla_subject_id(self.id)
        self.versions[aggregate_id] += 1
        event = build_event(
            payload,
            source=source,
            aggregate_id=aggregate_id,
            aggregate_version=self.versions[aggregate_id],
            occurred_at=RECEIVED_AT,
        )
        async with self.pool.acquire() as connection, connection.transaction():
            await handlers()[event.event_type](connection, event)

    async def overdue(self, clock: str = "first_response") -> float:
        await sla_gauges.measure(self.pool, lambda: BREACHED_AT, set())
        return REGISTRY.get_sample_value("complaints_overdue", {"clock": clock, "priority": self.priority}) or 0.0

    def registered(self) -> ComplaintRegisteredV2:
        return ComplaintRegisteredV2(
            complaint_number=f"C-{self.id.hex[:8]}",
            hall_id="GD-SZ-001",
            channel="app",
            category="billing",
            priority=self.priority,
            owner="GD-SZ-001",
            received_at=RECEIVED_AT,
            province="广东",
            city="深圳",
        )

    def breached(self) -> SlaBreachedV1:
        return SlaBreachedV1(
            subject_id=self.id,
            subject_kind="complaint",
            subject_started_at=RECEIVED_AT,
            hall_id="GD-SZ-001",
            clock="first_response",
            fraction=1.0,
            due_at=BREACHED_AT,
            at=BREACHED_AT,
            policy_version="2026-01",
            level=1,
            target_unit="group/广东/深圳/GD-SZ-001",
        )

    def first_response_stopped(self, at: datetime) -> SlaClockStoppedV1:
        return SlaClockStoppedV1(
            subject_id=self.id,
            subject_kind="complaint",
            subject_started_at=RECEIVED_AT,
            hall_id="GD-SZ-001",
            clock="first_response",
            clock_started_at=RECEIVED_AT,
            outcome="breached",
            working_seconds=(at - RECEIVED_AT).total_seconds(),
            limit_working_seconds=7200,
            policy_version="2026-01",
            reopened=False,
            stopped_at=at,
        )


async def test_a_breached_complaint_stays_overdue_until_escalations_verdict_says_its_clock_stopped(
    read_models: asyncpg.Pool,
) -> None:
    complaint = Complaint(read_models)
    await complaint.receive(complaint.registered())
    await complaint.receive(complaint.breached(), source="escalation")
    breached = await complaint.overdue()

    # An acknowledgement the gauges might take for the first response: only the verdict says it was.
    acknowledged_at = BREACHED_AT + timedelta(minutes=5)
    await complaint.receive(ComplaintAcknowledgedV1(actor="handler-1", reason="called back", at=acknowledged_at))
    acknowledged = await complaint.overdue()
    await complaint.receive(complaint.first_response_stopped(acknowledged_at), source="escalation")

    assert (breached, acknowledged, await complaint.overdue()) == (1, 1, 0)


async def test_a_verdict_after_a_step_the_gauges_know_nothing_of_ends_the_overdue(read_models: asyncpg.Pool) -> None:
    complaint = Complaint(read_models)
    await complaint.receive(complaint.registered())
    await complaint.receive(complaint.breached(), source="escalation")
    checked_at = BREACHED_AT + timedelta(minutes=5)
    await complaint.receive(
        ComplaintCheckedV1(
            actor="handler-1",
            reason="called the customer",
            at=checked_at,
            substantiated=True,
            root_cause="billing error",
            responsible_unit="GD-SZ-001",
        )
    )
    await complaint.receive(complaint.first_response_stopped(checked_at), source="escalation")

    assert await complaint.overdue() == 0


async def test_the_rebuild_compares_every_table_the_projections_keep(read_models: asyncpg.Pool) -> None:
    tables = await read_models.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        " AND tablename NOT LIKE '%yoyo%' ORDER BY tablename"  # the migrations' own bookkeeping
    )
    assert [row["tablename"] for row in tables] == sorted(READ_MODELS)
