"""Composition root of the projections service: `uvicorn --factory services.projections.main:create_app`."""

from __future__ import annotations

import gc

# The imports below allocate much and free little: collecting garbage meanwhile cost scoring a ninth of its
# start-up (0.17 s of 1.5). Collection resumes at the end of this module, with what they made frozen out of it.
gc.disable()

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import cast

from fastapi import FastAPI

from services.projections import (
    api,
    complaints,
    incidents,
    inspections,
    queues,
    scores,
    scores_api,
    sla_gauges,
    timeline,
)
from services.projections.statements import Statements
from shared.auth import Authenticator, AuthSettings
from shared.body_limit import guard_request_bodies
from shared.consumer import Connection, Delivery, Handler, Handling
from shared.contracts import (
    COMPLAINT_STEPS,
    CUSTOMER_NOTIFICATIONS,
    ORDER_STEPS,
    SLA_MILESTONES,
    ComplaintDispatchedV1,
    ComplaintRegisteredV1,
    HallChangedV1,
    HallRegisteredV1,
    IncidentOpenedV1,
    InspectionRecordedV1,
    IntegrationEvent,
    RectificationOrderOpenedV1,
    ScoreRecalculatedV1,
    SlaClockStoppedV1,
    SlaRecalculatedV1,
    SlaScheduledV1,
)
from shared.database import create_pool
from shared.errors import install_error_handlers
from shared.garbage import resume_garbage_collection
from shared.health import health_router
from shared.logs import setup_logging
from shared.metrics import instrument
from shared.migrations import CONSUMER, migrate_schema
from shared.openapi import describe_api, service_app
from shared.settings import ConnectionUse, ServiceSettings
from shared.streaming import ConsumerStatus, consuming
from shared.topics import COMPLAINTS_EVENTS, ESCALATION_EVENTS, SCORING_EVENTS
from shared.tracing import setup_tracing, trace_requests

logger = logging.getLogger(__name__)
SCHEMA = "projections"
CONNECTIONS = ConnectionUse(event_store=False, listeners=0)
CONSUMER_NAME = "projections"
OWN_MIGRATIONS = Path(__file__).parent / "migrations"  # beside the shared ones it needs
MIGRATIONS = [CONSUMER, OWN_MIGRATIONS]


def handlers() -> dict[str, Handler]:
    """Each complaint event goes into the timeline and, where it matters, the summary; in one transaction.

    Handlers only insert rows, or update a row in stream order: the rebuild relies on it to batch
    their statements (`rebuild._Statements`).
    """

    def all_of(*handlers: Handler) -> Handler:
        async def handle(connection: Connection, event: IntegrationEvent) -> None:
            for handler in handlers:
                await handler(connection, event)

        return handle

    opened = all_of(timeline.record_hall_of, timeline.record_event)
    return {
        HallRegisteredV1.event_type: complaints.record_hall,
        HallChangedV1.event_type: complaints.record_hall_change,
        ComplaintRegisteredV1.event_type: all_of(opened, complaints.record_registration),
        **{step.event_type: all_of(timeline.record_event, complaints.record_step) for step in COMPLAINT_STEPS},
        **{notice.event_type: timeline.record_notification for notice in CUSTOMER_NOTIFICATIONS},
        ComplaintDispatchedV1.event_type: all_of(
            timeline.record_event, complaints.record_step, timeline.record_hand_off
        ),
        InspectionRecordedV1.event_type: all_of(opened, inspections.record_inspection),
        IncidentOpenedV1.event_type: incidents.record_incident,
        RectificationOrderOpenedV1.event_type: all_of(opened, inspections.record_order),
        **{step.event_type: all_of(timeline.record_event, inspections.record_order_step) for step in ORDER_STEPS},
        **{sla.event_type: all_of(timeline.record_sla_event, queues.record_milestone) for sla in SLA_MILESTONES},
        SlaRecalculatedV1.event_type: all_of(timeline.record_sla_event, queues.record_deadlines),
        SlaScheduledV1.event_type: queues.record_deadlines,
        SlaClockStoppedV1.event_type: all_of(sla_gauges.record_clock_stop, queues.record_stop),
        ScoreRecalculatedV1.event_type: scores.record_score_change,
    }


def handling() -> Handling:
    """A batch's writes go to the database as a few statements (see `Statements`)."""
    by_type = handlers()
    one_by_one = Handling.one_by_one(by_type)

    async def apply(connection: Connection, deliveries: Sequence[Delivery]) -> None:
        statements = Statements()
        try:
            for delivery in deliveries:
                await by_type[delivery.event.event_type](cast(Connection, statements), delivery.event)
        except NotImplementedError:  # a handler that does more than insert and update in order
            await one_by_one.apply(connection, deliveries)
            return
        await statements.run(connection)

    return Handling(one_by_one.event_types, apply)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    setup_logging(SCHEMA, settings.log_level)
    setup_tracing(SCHEMA, settings.traces_exporter)
    auth = AuthSettings()
    clock = settings.clock(auth.environment)
    consumer_status = ConsumerStatus()  # joins in the background; `/readyz` reports it

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(str(settings.database_url), SCHEMA, max_size=settings.database_pool_size)
        logger.info("holds at most %d PostgreSQL connections", CONNECTIONS.most(settings))
        await migrate_schema(str(settings.database_url), SCHEMA, MIGRATIONS)
        app.state.pool = pool
        gauges = asyncio.create_task(sla_gauges.keep_measuring(pool, clock), name="sla-gauges")
        try:
            async with consuming(
                name=CONSUMER_NAME,
                pool=pool,
                handling=handling(),
                topics=[COMPLAINTS_EVENTS, ESCALATION_EVENTS, SCORING_EVENTS],
                bootstrap_servers=settings.kafka_bootstrap_servers,
                fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
                watch_broker_resets=settings.broker_reset_watchdog,
                data_dir=settings.data_dir,
                clock=clock,
                status=consumer_status,
            ):
                yield
        finally:
            gauges.cancel()
            await asyncio.gather(gauges, return_exceptions=True)
            await pool.close()

    app = service_app("projections", lifespan)
    app.state.pool = None
    app.state.authenticator = Authenticator(auth, audience="projections")
    app.include_router(api.router)
    app.include_router(scores_api.router)
    app.include_router(health_router(lambda: app.state.pool, settings.kafka_bootstrap_servers, consumer_status))
    install_error_handlers(app)
    describe_api(app)
    guard_request_bodies(app, settings.max_request_bytes)
    trace_requests(app)
    instrument(app)
    return app


resume_garbage_collection()
