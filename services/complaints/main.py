"""Composition root of the complaints service: `uvicorn --factory services.complaints.main:create_app`."""

from __future__ import annotations

import gc

# The imports below allocate much and free little: collecting garbage meanwhile cost scoring a ninth of its
# start-up (0.17 s of 1.5). Collection resumes at the end of this module, with what they made frozen out of it.
gc.disable()

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from fastapi import FastAPI

from services.complaints import api, inspections_api
from services.complaints.application import ComplaintsApplication
from services.complaints.outbox import complaints_outbox
from services.complaints.repositories import LegacyNumbers, PostgresSerialBlocks, PostgresVerificationAttempts
from services.complaints.surveys import SurveyTokens
from shared.auth import Authenticator, AuthSettings
from shared.body_limit import guard_request_bodies
from shared.database import create_pool
from shared.errors import install_error_handlers
from shared.health import health_router
from shared.metrics import instrument
from shared.relay import Relay, RelayPositions, relaying
from shared.settings import ServiceSettings
from shared.topics import COMPLAINTS_EVENTS
from shared.tracing import setup_tracing, trace_requests

logger = logging.getLogger(__name__)
SCHEMA = "complaints"
RELAY_NAME = "complaints-events"


class ComplaintsSettings(ServiceSettings):
    relay_batch_size: int = 500


async def migrate(pool: asyncpg.Pool) -> None:
    await RelayPositions(pool).create_tables()
    await PostgresSerialBlocks(pool).create()
    await PostgresVerificationAttempts(pool).create()


def create_app(settings: ComplaintsSettings | None = None) -> FastAPI:
    settings = settings or ComplaintsSettings()
    logging.basicConfig(level=settings.log_level)
    setup_tracing(SCHEMA, settings.traces_exporter)
    auth = AuthSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(str(settings.database_url), SCHEMA)
        await migrate(pool)
        complaints = await asyncio.to_thread(
            ComplaintsApplication,
            settings.eventsourcing_env(SCHEMA),
            PostgresSerialBlocks(pool),
            PostgresVerificationAttempts(pool),
            settings.clock(auth.environment),
            settings.max_steps_per_subject,
        )
        if adopted := await complaints.adopt_legacy_numbers(LegacyNumbers(pool)):
            logger.info("adopted %d complaint numbers of the former complaint_numbers table", adopted)
        relay = Relay(
            name=RELAY_NAME,
            outbox=complaints_outbox(complaints),
            positions=RelayPositions(pool),
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=COMPLAINTS_EVENTS,
            batch_size=settings.relay_batch_size,
        )
        app.state.complaints = complaints
        app.state.pool = pool
        try:
            async with relaying(relay, pool, str(settings.database_url), ComplaintsApplication.name):
                yield
        finally:
            complaints.close()
            await pool.close()

    app = FastAPI(title="complaints", version="1", lifespan=lifespan)
    app.state.pool = None
    app.state.authenticator = Authenticator(auth, audience="complaints")
    app.state.survey_tokens = SurveyTokens(auth.jwt_secret.get_secret_value().encode())
    app.include_router(api.router)
    app.include_router(inspections_api.router)
    app.include_router(health_router(lambda: app.state.pool, settings.kafka_bootstrap_servers))
    install_error_handlers(app)
    guard_request_bodies(app, settings.max_request_bytes)
    trace_requests(app)
    instrument(app)
    return app


gc.freeze()
gc.enable()
