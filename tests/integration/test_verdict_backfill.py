"""Escalation's store on PostgreSQL, holding subjects stored before escalation recorded verdicts: at
start-up each of their stopped clocks gets its verdict, once, for the relay to publish."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import REGISTRY

from devstack.postgres import EmbeddedPostgres
from services.escalation import verdict_backfill
from services.escalation.application import EscalationApplication
from services.escalation.main import MIGRATIONS
from services.escalation.outbox import escalation_outbox
from shared.contracts import SlaClockStoppedV1, decode_event
from shared.database import create_pool
from shared.migrations import migrate_schema
from shared.settings import ServiceSettings
from tests.unit.test_sla_subjects import RULES, Time, at, observe_as_before_verdicts, urgent_complaint


@pytest.fixture
async def escalation(postgres: EmbeddedPostgres) -> AsyncIterator[tuple[EscalationApplication, asyncpg.Pool, Time]]:
    """Escalation's store and tables in a schema of their own."""
    schema = f"escalation_{uuid.uuid4().hex[:12]}"
    pool = await create_pool(postgres.url, schema)
    time = Time(at("2026-10-12 09:00"))
    env = ServiceSettings(database_url=postgres.url).eventsourcing_env(schema)
    application = EscalationApplication(env, RULES, time)
    await migrate_schema(postgres.url, schema, MIGRATIONS)
    try:
        yield application, pool, time
    finally:
        application.close()
        await pool.close()


def counted_first_responses() -> float:
    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "complaints_first_responded"
        for sample in family.samples
        if sample.name == "complaints_first_responded_total"
    )


async def test_clocks_stopped_before_verdicts_get_theirs_once_for_the_relay_and_count_nothing_again(
    escalation: tuple[EscalationApplication, asyncpg.Pool, Time],
) -> None:
    application, pool, time = escalation
    stored_before = [urgent_complaint(at("2026-10-12 09:00")) for _ in range(2)]
    judged_live = urgent_complaint(at("2026-10-12 09:00"))
    for opening in [*stored_before, judged_live]:
        application.open(opening)
    time.now = at("2026-10-12 11:30")
    observe_as_before_verdicts(application, stored_before[0].subject_id, "ComplaintAcknowledged", "09:30")
    observe_as_before_verdicts(application, stored_before[1].subject_id, "ComplaintAcknowledged", "11:30")  # late
    application.observe(judged_live.subject_id, uuid.uuid4(), "ComplaintAcknowledged", at("2026-10-12 10:00"))
    relayed_up_to = application.recorder.max_notification_id() or 0
    counted_before = counted_first_responses()

    recorded = await verdict_backfill.record_missing_verdicts(application, pool, batch_size=2)  # two batches
    recorded_again = await verdict_backfill.record_missing_verdicts(application, pool)

    assert (recorded, recorded_again) == (2, 0)
    published = [
        decode_event(message.value).payload
        for message in await escalation_outbox(application, pool).read_after(relayed_up_to, 100)
        if message.value is not None
    ]
    verdicts = [verdict for verdict in published if isinstance(verdict, SlaClockStoppedV1)]
    assert len(verdicts) == len(published)
    assert sorted((v.subject_id, v.clock, v.outcome, v.stopped_at) for v in verdicts) == sorted(
        [
            (stored_before[0].subject_id, "first_response", "met", at("2026-10-12 09:30")),
            (stored_before[1].subject_id, "first_response", "breached", at("2026-10-12 11:30")),
        ]
    )
    assert counted_first_responses() == counted_before
    assert await pool.fetchval("SELECT verdicts FROM sla_verdict_backfills") == 2
