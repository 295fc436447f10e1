"""Composition root of the projections service: `uvicorn --factory services.projections.main:create_app`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from faust.contrib.asgi import faust_app_running

from services.projections import api, complaints, timeline
from shared.auth import Authenticator, AuthSettings
from shared.consumer import Connection, Handler, IdempotentConsumer
from shared.contracts import (
    COMPLAINT_STEPS,
    ORDER_STEPS,
    ComplaintRegisteredV1,
    HallRegisteredV1,
    InspectionRecordedV1,
    IntegrationEvent,
    RectificationOrderOpenedV1,
)
from shared.database import create_pool
from shared.errors import install_error_handlers
from shared.health import health_router
from shared.settings import ServiceSettings
from shared.streaming import (
    BrokerResetWatchdog,
    ConsumerEpochs,
    FaustDeadLetterSink,
    create_faust_app,
    subscribe,
)
from shared.topics import COMPLAINTS_EVENTS
from shared.tracing import setup_tracing, trace_requests

SCHEMA = "projections"
CONSUMER_NAME = "projections"


def handlers() -> dict[str, Handler]:
    """Each complaint event goes into the timeline and, where it matters, the summary; in one transaction."""

    def all_of(*handlers: Handler) -> Handler:
        async def handle(connection: Connection, event: IntegrationEvent) -> None:
            for handler in handlers:
                await handler(connection, event)

        return handle

    opened = all_of(timeline.record_hall_of, timeline.record_event)
    return {
        HallRegisteredV1.event_type: complaints.record_hall,
        ComplaintRegisteredV1.event_type: all_of(opened, complaints.record_registration),
        **{step.event_type: all_of(timeline.record_event, complaints.record_step) for step in COMPLAINT_STEPS},
        InspectionRecordedV1.event_type: opened,
        RectificationOrderOpenedV1.event_type: opened,
        **{step.event_type: timeline.record_event for step in ORDER_STEPS},
    }


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    logging.basicConfig(level=settings.log_level)
    setup_tracing(SCHEMA, settings.traces_exporter)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(str(settings.database_url), SCHEMA)
        epochs = ConsumerEpochs(pool, CONSUMER_NAME)
        streams = create_faust_app(await epochs.group_id(), settings.kafka_bootstrap_servers, settings.data_dir)
        consumer = IdempotentConsumer(
            name=CONSUMER_NAME,
            pool=pool,
            handlers=handlers(),
            dead_letters=FaustDeadLetterSink(streams, CONSUMER_NAME),
        )
        await consumer.create_tables()
        await timeline.create_tables(pool)
        await complaints.create_tables(pool)
        subscribe(streams, consumer, COMPLAINTS_EVENTS)
        app.state.pool = pool
        watchdog = asyncio.create_task(
            BrokerResetWatchdog(settings.kafka_bootstrap_servers, COMPLAINTS_EVENTS, epochs.next_epoch).run()
        )
        try:
            async with faust_app_running(streams, stop_timeout=10):
                yield
        finally:
            watchdog.cancel()
            await pool.close()

    app = FastAPI(title="projections", version="1", lifespan=lifespan)
    app.state.pool = None
    app.state.authenticator = Authenticator(AuthSettings())
    app.include_router(api.router)
    app.include_router(health_router(lambda: app.state.pool, settings.kafka_bootstrap_servers))
    install_error_handlers(app)
    trace_requests(app)
    return app
