"""Composition root of the projections service: `uvicorn --factory services.projections.main:create_app`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from faust.contrib.asgi import faust_app_running

from services.projections import api, complaints, timeline
from shared.auth import Authenticator, AuthSettings
from shared.consumer import Connection, Handler, IdempotentConsumer
from shared.contracts import COMPLAINT_STEPS, ComplaintRegisteredV1, HallRegisteredV1, IntegrationEvent
from shared.database import create_pool
from shared.errors import install_error_handlers
from shared.health import health_router
from shared.settings import ServiceSettings
from shared.streaming import FaustDeadLetterSink, create_faust_app, subscribe
from shared.topics import COMPLAINTS_EVENTS

SCHEMA = "projections"
CONSUMER_NAME = "projections"


def handlers() -> dict[str, Handler]:
    """Each complaint event goes into the timeline and, where it matters, the summary; in one transaction."""

    def both(summary: Handler) -> Handler:
        async def handle(connection: Connection, event: IntegrationEvent) -> None:
            await timeline.record_complaint_event(connection, event)
            await summary(connection, event)

        return handle

    steps = {contract.event_type: both(complaints.record_step) for contract in COMPLAINT_STEPS}
    return {
        **steps,
        ComplaintRegisteredV1.event_type: both(complaints.record_registration),
        HallRegisteredV1.event_type: complaints.record_hall,
    }


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    logging.basicConfig(level=settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(str(settings.database_url), SCHEMA)
        streams = create_faust_app(CONSUMER_NAME, settings.kafka_bootstrap_servers, settings.data_dir)
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
        try:
            async with faust_app_running(streams, stop_timeout=10):
                yield
        finally:
            await pool.close()

    app = FastAPI(title="projections", version="1", lifespan=lifespan)
    app.state.pool = None
    app.state.authenticator = Authenticator(AuthSettings())
    app.include_router(api.router)
    app.include_router(health_router(lambda: app.state.pool, settings.kafka_bootstrap_servers))
    install_error_handlers(app)
    return app
