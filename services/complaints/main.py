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
from datetime import timedelta

import asyncpg
from fastapi import FastAPI
from pydantic import Field, SecretStr

from services.complaints import api, erasure_api, incidents_api, inspections_api, personal_data
from services.complaints.application import ComplaintsApplication
from services.complaints.outbox import complaints_outbox
from services.complaints.personal_data import RECORDER_TOPIC, MasterKey, PostgresDataKeys
from services.complaints.repositories import LegacyNumbers, PostgresSerialBlocks, PostgresVerificationAttempts
from services.complaints.surveys import SurveyTokens
from shared.audit_chain import install_chain
from shared.auth import Authenticator, AuthSettings
from shared.body_limit import guard_request_bodies
from shared.database import create_pool
from shared.errors import install_error_handlers
from shared.health import health_router
from shared.metrics import instrument
from shared.relay import Relay, RelayPositions, relaying
from shared.settings import ServiceSettings
from shared.tasks import essential_task
from shared.topics import COMPLAINTS_EVENTS
from shared.tracing import setup_tracing, trace_requests

logger = logging.getLogger(__name__)
SCHEMA = "complaints"
RELAY_NAME = "complaints-events"


DEVELOPMENT_PERSONAL_DATA_KEY = "development-only-personal-data-key-change-me"


class ComplaintsSettings(ServiceSettings):
    relay_batch_size: int = 500
    personal_data_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_PERSONAL_DATA_KEY),
        description="The master key (32 bytes or more) wrapping each complaint's data key and keying phone"
        " digests; from a Kubernetes Secret. The default serves only with ENVIRONMENT=development.",
    )
    personal_data_retention_days: int = Field(
        default=365, ge=1, description="A complaint's customer data is erased this many days after it closed."
    )
    retention_sweep_seconds: float = Field(default=60, gt=0, description="How often erasures fall due are made.")
    repeat_window_days: int = Field(
        default=30, ge=1, description="A customer's complaint within this many days of an earlier one is a repeat."
    )


async def migrate(pool: asyncpg.Pool) -> None:
    await RelayPositions(pool).create_tables()
    await PostgresSerialBlocks(pool).create()
    await PostgresVerificationAttempts(pool).create()
    await pool.execute(personal_data.DDL)


async def erase_when_retention_ends(complaints: ComplaintsApplication, settings: ComplaintsSettings) -> None:
    retention = timedelta(days=settings.personal_data_retention_days)
    while True:
        try:
            if erased := await asyncio.to_thread(complaints.erase_after_retention, retention):
                logger.info("erased the customer data of %d complaints closed over %s ago", erased, retention)
        except Exception:  # the database may come back; erasures must not stop for good
            logger.exception("erasures after retention not made; trying again")
        await asyncio.sleep(settings.retention_sweep_seconds)


def create_app(settings: ComplaintsSettings | None = None) -> FastAPI:
    settings = settings or ComplaintsSettings()
    logging.basicConfig(level=settings.log_level)
    setup_tracing(SCHEMA, settings.traces_exporter)
    auth = AuthSettings()
    secret = settings.personal_data_key.get_secret_value()
    if secret == DEVELOPMENT_PERSONAL_DATA_KEY and not auth.development:
        raise ValueError("PERSONAL_DATA_KEY must be set outside ENVIRONMENT=development")
    master_key = MasterKey(secret.encode())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(str(settings.database_url), SCHEMA)
        await migrate(pool)
        complaints = await asyncio.to_thread(
            ComplaintsApplication,
            {**settings.eventsourcing_env(SCHEMA), "APPLICATION_RECORDER_TOPIC": RECORDER_TOPIC},
            PostgresSerialBlocks(pool),
            PostgresVerificationAttempts(pool),
            master_key,
            lambda application: PostgresDataKeys(application.recorder, pool),
            settings.clock(auth.environment),
            settings.max_steps_per_subject,
            timedelta(days=settings.repeat_window_days),
        )
        await install_chain(pool, SCHEMA)
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
            async with (
                relaying(relay, pool, str(settings.database_url), ComplaintsApplication.name),
                essential_task(erase_when_retention_ends(complaints, settings), "erasures after retention"),
            ):
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
    app.include_router(incidents_api.router)
    app.include_router(erasure_api.router)
    app.include_router(health_router(lambda: app.state.pool, settings.kafka_bootstrap_servers))
    install_error_handlers(app)
    guard_request_bodies(app, settings.max_request_bytes)
    trace_requests(app)
    instrument(app)
    return app


gc.freeze()
gc.enable()
