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
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import Field, SecretStr

from services.complaints import (
    api,
    attachments_api,
    erasure_api,
    incidents_api,
    inspections_api,
)
from services.complaints.application import ComplaintsApplication
from services.complaints.attachments import RetentionPolicy
from services.complaints.attachments_repository import PostgresAttachments
from services.complaints.blobs import AttachmentsSettings, Blobs, open_store
from services.complaints.evidence import Evidence
from services.complaints.group_commit import PostgresBatches
from services.complaints.notification_channels import Channel, EmailChannel, GatewayChannel
from services.complaints.notification_queue import NotificationQueue
from services.complaints.notifications import ChannelName
from services.complaints.notifier import Links, Notifier
from services.complaints.outbox import complaints_outbox
from services.complaints.personal_data import MasterKey
from services.complaints.repositories import (
    LegacyNumbers,
    PostgresDataKeys,
    PostgresSerialBlocks,
    PostgresVerificationAttempts,
)
from services.complaints.surveys import SurveyTokens
from shared.auth import Authenticator, AuthSettings
from shared.body_limit import guard_request_bodies
from shared.database import create_pool
from shared.errors import install_error_handlers
from shared.garbage import resume_garbage_collection
from shared.health import health_router
from shared.logs import setup_logging
from shared.metrics import instrument
from shared.migrations import AUDIT_CHAIN, RELAY, migrate_schema
from shared.openapi import describe_api, service_app
from shared.relay import Relay, RelayPositions, relaying
from shared.settings import ConnectionUse, ServiceSettings
from shared.tasks import essential_task
from shared.topics import COMPLAINTS_EVENTS
from shared.tracing import setup_tracing, trace_requests

logger = logging.getLogger(__name__)
SCHEMA = "complaints"
CONNECTIONS = ConnectionUse(event_store=True, listeners=1)  # its relay's NOTIFY listener
RELAY_NAME = "complaints-events"
OWN_MIGRATIONS = Path(__file__).parent / "migrations"  # beside the shared ones it needs
MIGRATIONS = [RELAY, OWN_MIGRATIONS, AUDIT_CHAIN]


DEVELOPMENT_PERSONAL_DATA_KEY = "development-only-personal-data-key-change-me"


class ComplaintsSettings(ServiceSettings, AttachmentsSettings):
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
    notify_smtp_host: str | None = Field(default=None, description="The SMTP server for email; none: no email.")
    notify_smtp_port: int = 25
    notify_smtp_sender: str = "noreply@complaints.invalid"
    notify_smtp_username: str | None = None
    notify_smtp_password: SecretStr | None = Field(default=None, description="From a Kubernetes Secret.")
    notify_smtp_starttls: bool = False
    notify_gateway_url: str | None = Field(
        default=None, description="The messaging gateway for SMS and WeChat (notification_channels.py); none: neither."
    )
    notify_gateway_token: SecretStr = Field(default=SecretStr(""), description="From a Kubernetes Secret.")
    notify_poll_seconds: float = Field(default=1.0, gt=0, description="How often notifications are planned and sent.")
    customer_progress_url: str = Field(
        default="https://www.189.cn/complaints/progress?number={number}",
        description="The customer portal's progress page, which calls the public progress query.",
    )
    customer_survey_url: str = Field(
        default="https://www.189.cn/complaints/survey/{token}",
        description="The customer portal's survey page, which posts to /api/v1/public/surveys/{token}.",
    )

    def notification_channels(self, http: httpx.AsyncClient) -> dict[ChannelName, Channel]:
        channels: dict[ChannelName, Channel] = {}
        if self.notify_smtp_host:
            password = self.notify_smtp_password
            channels["email"] = EmailChannel(
                self.notify_smtp_host,
                self.notify_smtp_port,
                self.notify_smtp_sender,
                self.notify_smtp_username,
                None if password is None else password.get_secret_value(),
                self.notify_smtp_starttls,
            )
        if self.notify_gateway_url:
            gateway = GatewayChannel(http, self.notify_gateway_url, self.notify_gateway_token.get_secret_value())
            channels["sms"] = channels["wechat"] = gateway
        return channels


async def erase_when_retention_ends(complaints: ComplaintsApplication, settings: ComplaintsSettings) -> None:
    retention = timedelta(days=settings.personal_data_retention_days)
    while True:
        try:
            if erased := await asyncio.to_thread(complaints.erase_after_retention, retention):
                logger.info("erased the customer data of %d complaints closed over %s ago", erased, retention)
        except Exception:  # the database may come back; erasures must not stop for good
            logger.exception("erasures after retention not made; trying again")
        await asyncio.sleep(settings.retention_sweep_seconds)


async def delete_unlinked_attachments(evidence: Evidence, settings: ComplaintsSettings) -> None:
    while True:
        try:
            if deleted := await asyncio.to_thread(evidence.delete_expired):
                logger.info("deleted %d attachments no step referred to", deleted)
        except Exception:  # the database or the object store may come back; deletions must not stop for good
            logger.exception("unlinked attachments not deleted; trying again")
        await asyncio.sleep(settings.retention_sweep_seconds)


def create_app(settings: ComplaintsSettings | None = None) -> FastAPI:
    settings = settings or ComplaintsSettings()
    setup_logging(SCHEMA, settings.log_level)
    setup_tracing(SCHEMA, settings.traces_exporter)
    auth = AuthSettings()
    secret = settings.personal_data_key.get_secret_value()
    if secret == DEVELOPMENT_PERSONAL_DATA_KEY and not auth.development:
        raise ValueError("PERSONAL_DATA_KEY must be set outside ENVIRONMENT=development")
    master_key = MasterKey(secret.encode())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(str(settings.database_url), SCHEMA, max_size=settings.database_pool_size)
        logger.info("holds at most %d PostgreSQL connections", CONNECTIONS.most(settings))
        # The application first: it creates its event store's table, which the migrations' chain goes over.
        complaints = await asyncio.to_thread(
            ComplaintsApplication,
            settings.eventsourcing_env(SCHEMA),
            PostgresSerialBlocks(pool),
            PostgresVerificationAttempts(pool),
            master_key,
            lambda application: PostgresDataKeys(application.recorder, pool),
            lambda application: PostgresBatches(application, pool),
            settings.clock(auth.environment),
            settings.max_steps_per_subject,
            timedelta(days=settings.repeat_window_days),
        )
        await migrate_schema(str(settings.database_url), SCHEMA, MIGRATIONS)
        if adopted := await complaints.adopt_legacy_numbers(LegacyNumbers(pool)):
            logger.info("adopted %d complaint numbers of the former complaint_numbers table", adopted)
        relay = Relay(
            name=RELAY_NAME,
            outbox=complaints_outbox(complaints, pool),
            positions=RelayPositions(pool),
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=COMPLAINTS_EVENTS,
            batch_size=settings.relay_batch_size,
        )
        app.state.complaints = complaints
        app.state.pool = pool
        evidence = Evidence(
            PostgresAttachments(complaints.recorder),
            Blobs(open_store(settings, settings.data_dir)),
            RetentionPolicy(settings.attachments_unlinked_hours),
            complaints.clock,
        )
        complaints.also_erase(evidence.erase_subject)
        app.state.evidence = evidence
        http = httpx.AsyncClient()
        notifier = Notifier(
            complaints,
            NotificationQueue(pool),
            settings.notification_channels(http),
            Links(settings.customer_progress_url, settings.customer_survey_url, app.state.survey_tokens),
            complaints.clock,
        )
        try:
            async with (
                relaying(relay, pool, str(settings.database_url), ComplaintsApplication.name),
                essential_task(erase_when_retention_ends(complaints, settings), "erasures after retention"),
                essential_task(delete_unlinked_attachments(evidence, settings), "deletion of unlinked attachments"),
                # No channel configured (the benchmarks, a stack without the stand-ins): nothing to plan or send.
                essential_task(notifier.run(settings.notify_poll_seconds), "customer notifications")
                if notifier.channels
                else contextlib.nullcontext(),
            ):
                try:
                    yield
                finally:  # while the relay still runs, so that it publishes them
                    await complaints.registrations_committed()
        finally:
            complaints.close()
            await http.aclose()
            await pool.close()

    app = service_app("complaints", lifespan)
    app.state.pool = None
    app.state.authenticator = Authenticator(auth, audience="complaints")
    app.state.survey_tokens = SurveyTokens(auth.jwt_secret.get_secret_value().encode())
    app.include_router(api.router)
    app.include_router(inspections_api.router)
    app.include_router(incidents_api.router)
    app.include_router(erasure_api.router)
    app.include_router(attachments_api.router)
    app.include_router(health_router(lambda: app.state.pool, settings.kafka_bootstrap_servers))
    install_error_handlers(app)
    describe_api(app)
    app.state.attachments_max_bytes = settings.attachments_max_bytes
    upload_limit = settings.attachments_max_bytes + attachments_api.MULTIPART_OVERHEAD
    guard_request_bodies(app, settings.max_request_bytes, {attachments_api.UPLOAD_PATH: upload_limit})
    trace_requests(app)
    instrument(app)
    return app


resume_garbage_collection()
