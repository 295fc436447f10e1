"""Composition root of the scoring service: `uvicorn --factory services.scoring.main:create_app`.

Consumes complaint and SLA events into per-hall, per-period scorecards and publishes each
recalculation to `scoring.events.v1`, where the projections keep each hall's and complaint's
trail of changes. Serves what applies the scoring policy: grades, audits, what-ifs and the
evaluation campaigns.
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

from services.scoring import api, campaigns_api, consumer, grades_table, read_model, reports_api
from services.scoring.application import ScoringApplication
from services.scoring.campaigns import Campaigns
from services.scoring.outbox import scoring_outbox
from services.scoring.policy import load_scoring_policies
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
from shared.streaming import ConsumerStatus, consuming
from shared.topics import COMPLAINTS_EVENTS, ESCALATION_EVENTS, SCORING_EVENTS
from shared.tracing import setup_tracing, trace_requests

logger = logging.getLogger(__name__)
SCHEMA = "scoring"
CONNECTIONS = ConnectionUse(
    event_store=True, listeners=2
)  # its relay's NOTIFY listener, and the score changes' copier's
CONSUMER_NAME = "scoring"
RELAY_NAME = "scoring-events"
OWN_MIGRATIONS = Path(__file__).parent / "migrations"  # beside the shared ones it needs
MIGRATIONS = [RELAY, CONSUMER, OWN_MIGRATIONS, AUDIT_CHAIN]


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    setup_logging(SCHEMA, settings.log_level)
    setup_tracing(SCHEMA, settings.traces_exporter)
    policies = load_scoring_policies()  # an invalid policy file stops the service here, naming the entry
    auth = AuthSettings()
    clock = settings.clock(auth.environment)
    consumer_status = ConsumerStatus()  # joins in the background; `/readyz` reports it

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(str(settings.database_url), SCHEMA, max_size=settings.database_pool_size)
        logger.info("holds at most %d PostgreSQL connections", CONNECTIONS.most(settings))
        # The application first: it creates its event store's table, which the migrations' chain goes over.
        scoring = await asyncio.to_thread(ScoringApplication, settings.eventsourcing_env(SCHEMA), policies, clock)
        await migrate_schema(str(settings.database_url), SCHEMA, MIGRATIONS)
        relay = Relay(
            name=RELAY_NAME,
            outbox=scoring_outbox(scoring, pool),
            positions=RelayPositions(pool),
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=SCORING_EVENTS,
        )
        app.state.pool = pool
        app.state.scoring = scoring
        app.state.clock = clock
        app.state.campaigns = Campaigns(scoring, pool, policies, clock)
        try:
            async with (
                relaying(relay, pool, str(settings.database_url), ScoringApplication.name),
                read_model.copying_score_changes(scoring, pool, str(settings.database_url)),
                grades_table.refreshing(pool, policies),
                consuming(
                    name=CONSUMER_NAME,
                    pool=pool,
                    handling=consumer.handling(scoring),
                    topics=[COMPLAINTS_EVENTS, ESCALATION_EVENTS],
                    bootstrap_servers=settings.kafka_bootstrap_servers,
                    fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
                    watch_broker_resets=settings.broker_reset_watchdog,
                    data_dir=settings.data_dir,
                    clock=clock,
                    status=consumer_status,
                ),
            ):
                yield
        finally:
            scoring.close()
            await pool.close()

    app = service_app("scoring", lifespan)
    app.state.pool = None
    app.state.authenticator = Authenticator(auth, audience="scoring")
    app.state.policies = policies
    app.state.what_ifs = asyncio.Semaphore(1)
    app.include_router(api.router)
    app.include_router(campaigns_api.router)
    app.include_router(reports_api.router)
    app.include_router(health_router(lambda: app.state.pool, settings.kafka_bootstrap_servers, consumer_status))
    install_error_handlers(app)
    describe_api(app)
    guard_request_bodies(app, settings.max_request_bytes)
    trace_requests(app)
    instrument(app)
    return app


resume_garbage_collection()
