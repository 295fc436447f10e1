"""`python -m services.migrate`: creates or upgrades every service's tables (the Kubernetes migration Job).

Each service also runs its own migration at start-up, and every statement is idempotent; the Job
runs them once before a release's pods start, so replicas do not race each other on DDL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from services.complaints import main as complaints
from services.escalation import main as escalation
from services.projections import main as projections
from services.scoring import main as scoring
from shared.database import create_pool
from shared.settings import ServiceSettings
from shared.streaming import create_consumer_tables

logger = logging.getLogger(__name__)
Migration = Callable[[asyncpg.Pool], Awaitable[None]]
# (schema, its own tables, whether it keeps an event store, whether it consumes)
SERVICES: list[tuple[str, Migration, bool, bool]] = [
    (complaints.SCHEMA, complaints.migrate, True, False),
    (escalation.SCHEMA, escalation.migrate, True, True),
    (scoring.SCHEMA, scoring.migrate, True, True),
    (projections.SCHEMA, projections.migrate, False, True),
]


def create_event_store(settings: ServiceSettings, schema: str) -> None:
    """The event store's table, named after the application as `eventsourcing` names it."""
    factory = InfrastructureFactory.construct(Environment(schema, settings.eventsourcing_env(schema)))
    try:
        factory.application_recorder()  # creates the table: CREATE_TABLE is on by default
    finally:
        factory.close()


async def migrate_all(settings: ServiceSettings) -> None:
    for schema, migrate, has_event_store, consumes in SERVICES:
        pool = await create_pool(str(settings.database_url), schema)
        try:
            await migrate(pool)
            if consumes:
                await create_consumer_tables(pool)
        finally:
            await pool.close()
        if has_event_store:
            await asyncio.to_thread(create_event_store, settings, schema)
        logger.info("schema %s is up to date", schema)


if __name__ == "__main__":
    settings = ServiceSettings()
    logging.basicConfig(level=settings.log_level)
    asyncio.run(migrate_all(settings))
