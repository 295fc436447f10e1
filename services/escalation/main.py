"""Composition root of the escalation service: `uvicorn --factory services.escalation.main:create_app`.

One process consumes complaint events into SLA clocks, fires their deadlines, publishes
the warnings, breaches, escalations and the verdict on each stopped clock through its relay, and serves the clocks, the
calendar and the policies. Several replicas may run: the deadlines are claimed row by row
and only the replica holding the relay lock publishes.
"""

from __future__ import annotations

import gc

# The imports below allocate much and free little: collecting garbage meanwhile cost scoring a ninth of its
# start-up (0.17 s of 1.5). Collection resumes at the end of this module, with what they made frozen out of it.
gc.disable()

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import REGISTRY

from services.escalation import api, clocks_api, consumer, recalculation, scheduler, verdict_backfill
from services.escalation.application import EscalationApplication
from services.escalation.calendar import BUSINESS_HOURS_FILE, CALENDAR_DIR, Calendars, load_year_files
from services.escalation.metrics import SlaLimits
from services.escalation.outbox import escalation_outbox
from services.escalation.policy import POLICY_DIR, load_policies
from services.escalation.repositories import PostgresRuleChanges
from services.escalation.tracking import SlaRules
from shared.auth import Authenticator, AuthSettings
from shared.body_limit import guard_request_bodies
from shared.database import create_pool
from shared.errors import install_error_handlers
from shared.garbage import resume_garbage_collection
from shared.health import health_router
from shared.logs import setup_logging
from shared.metrics import instrument
from shared.migrations import AUDIT_CHAIN, CONSUMER, RELAY, migrate_schema
from shared.openapi import describe_api, service_app
from shared.relay import Relay, RelayPositions, relaying
from shared.settings import ConnectionUse, ServiceSettings
from shared.streaming import ConsumerStatus, consuming, wait_until_caught_up
from shared.tasks import essential_task
from shared.topics import COMPLAINTS_EVENTS, ESCALATION_EVENTS
from shared.tracing import setup_tracing, trace_requests

SCHEMA = "escalation"
CONNECTIONS = ConnectionUse(event_store=True, listeners=1)  # its relay's NOTIFY listener
CONSUMER_NAME = "escalation"
RELAY_NAME = "escalation-events"
OWN_MIGRATIONS = Path(__file__).parent / "migrations"  # beside the shared ones it needs
MIGRATIONS = [RELAY, CONSUMER, OWN_MIGRATIONS, AUDIT_CHAIN]
logger = logging.getLogger(__name__)


class EscalationSettings(ServiceSettings):
    policy_dir: Path = POLICY_DIR
    calendar_dir: Path = CALENDAR_DIR
    business_hours_file: Path = BUSINESS_HOURS_FILE


def load_rules(settings: EscalationSettings) -> SlaRules:
    """An invalid policy or calendar file stops the service here, naming the bad entry."""
    calendars = Calendars(
        settings.business_hours_file, load_year_files(settings.calendar_dir), assume_weekdays_in_unknown_years=True
    )
    return SlaRules(load_policies(settings.policy_dir), calendars)


def create_app(settings: EscalationSettings | None = None) -> FastAPI:
    settings = settings or EscalationSettings()
    setup_logging(SCHEMA, settings.log_level)
    setup_tracing(SCHEMA, settings.traces_exporter)
    auth = AuthSettings()
    clock = settings.clock(auth.environment)
    rules = load_rules(settings)
    consumer_status = ConsumerStatus()  # joins in the background; `/readyz` reports it

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(str(settings.database_url), SCHEMA, max_size=settings.database_pool_size)
        logger.info("holds at most %d PostgreSQL connections", CONNECTIONS.most(settings))
        # The application first: it creates its event store's table, which the migrations' chain goes over.
        escalation = await asyncio.to_thread(EscalationApplication, settings.eventsourcing_env(SCHEMA), rules, clock)
        await migrate_schema(str(settings.database_url), SCHEMA, MIGRATIONS)
        await recalculation.apply_rule_changes(escalation, pool)
        await verdict_backfill.record_missing_verdicts(escalation, pool)
        relay = Relay(
            name=RELAY_NAME,
            outbox=escalation_outbox(escalation, pool),
            positions=RelayPositions(pool),
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=ESCALATION_EVENTS,
        )
        app.state.pool = pool
        app.state.escalation = escalation
        app.state.rule_changes = PostgresRuleChanges(pool)

        async def fire_deadlines_once_caught_up() -> None:
            """After a restart, acknowledgements and closures may still be queued: fire nothing before them."""
            group_id = await consumer_status.joined()
            if not await wait_until_caught_up(settings.kafka_bootstrap_servers, group_id, COMPLAINTS_EVENTS):
                logger.warning("consumer still behind after a minute; firing deadlines anyway")
            await scheduler.Scheduler(escalation, pool, clock).run()

        limits = SlaLimits(rules, clock)
        REGISTRY.register(limits)
        try:
            async with (
                relaying(relay, pool, str(settings.database_url), EscalationApplication.name),
                consuming(
                    name=CONSUMER_NAME,
                    pool=pool,
                    handling=consumer.handling(escalation),
                    topics=[COMPLAINTS_EVENTS],
                    bootstrap_servers=settings.kafka_bootstrap_servers,
                    fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
                    watch_broker_resets=settings.broker_reset_watchdog,
                    data_dir=settings.data_dir,
                    clock=clock,
                    status=consumer_status,
                ),
                essential_task(fire_deadlines_once_caught_up(), "scheduler"),
            ):
                yield
        finally:
            escalation.close()
            await pool.close()
            REGISTRY.unregister(limits)

    app = service_app("escalation", lifespan)
    app.state.pool = None
    app.state.authenticator = Authenticator(auth, audience="escalation")
    app.state.calendars = Calendars(settings.business_hours_file, rules.calendars.default.year_files)
    app.state.policies = rules.policies
    app.include_router(api.router)
    app.include_router(api.policies_router)
    app.include_router(clocks_api.router)
    app.include_router(health_router(lambda: app.state.pool, settings.kafka_bootstrap_servers, consumer_status))
    install_error_handlers(app)
    describe_api(app)
    guard_request_bodies(app, settings.max_request_bytes)
    trace_requests(app)
    instrument(app)
    return app


resume_garbage_collection()
