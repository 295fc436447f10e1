"""`python -m services.migrate`: applies every service schema's pending migrations (the Kubernetes migration
Job, a hook that runs before each rollout).

Each service also applies its own at start-up, under the same per-schema lock (`shared.migrations`); after
the Job, they find nothing to do, so a release's replicas never race each other on DDL.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment
from pydantic import Field

from services.complaints import main as complaints
from services.escalation import main as escalation
from services.projections import main as projections
from services.scoring import main as scoring
from shared import audit_chain
from shared.database import create_pool
from shared.logs import setup_logging
from shared.migrations import migrate_schema
from shared.settings import ConnectionUse, ServiceSettings

logger = logging.getLogger(__name__)
# One schema at a time, one thing at a time: its pool, its event store's, or the migrator's two connections.
CONNECTIONS = ConnectionUse(event_store=True, listeners=0)
# (schema, its migrations, the tables its event-sourced application keeps: none, its events, or snapshots too)
SERVICES: list[tuple[str, list[Path], tuple[str, ...]]] = [
    (complaints.SCHEMA, complaints.MIGRATIONS, ("events",)),
    (escalation.SCHEMA, escalation.MIGRATIONS, ("events",)),
    (scoring.SCHEMA, scoring.MIGRATIONS, ("events", "snapshots")),
    (projections.SCHEMA, projections.MIGRATIONS, ()),
]


def create_event_store(settings: ServiceSettings, schema: str, tables: tuple[str, ...]) -> None:
    """The event store's tables, named after the application as `eventsourcing` names them."""
    factory = InfrastructureFactory.construct(Environment(schema, settings.eventsourcing_env(schema)))
    try:
        factory.application_recorder()  # creates the table: CREATE_TABLE is on by default
        if "snapshots" in tables:
            factory.aggregate_recorder(purpose="snapshots")
    finally:
        factory.close()


class MigrationSettings(ServiceSettings):
    schema_owners: str = Field(
        default="",
        description="Comma-separated schemas to hand to the database role of the same name, with all they hold"
        " (the CloudNativePG managed roles in Kubernetes); the role `auditor`, if it exists, may read them all"
        " and record audit anchors. Empty: everything stays the migrating role's (the local stack).",
    )


async def hand_schemas_to_their_roles(database_url: str, schemas: list[str]) -> None:
    """Each schema, and every table, sequence and function in it, owned by the role named after it: so each
    service writes only its own schema, and the projections' role cannot touch an event store."""
    connection = await asyncpg.connect(database_url)
    try:
        auditor = await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'auditor'")
        database = await connection.fetchval("SELECT current_database()")
        for schema in schemas:
            # A new owner of a schema must be allowed to create in the database (PostgreSQL's rule).
            await connection.execute(f'GRANT CREATE ON DATABASE "{database}" TO "{schema}"')
            await connection.execute(f'ALTER SCHEMA "{schema}" OWNER TO "{schema}"')
            # Sequences of a table's own columns follow their table; changed alone, they would be refused.
            objects = await connection.fetch(
                """
                SELECT 1 AS step, 'TABLE' AS kind, format('%I.%I', schemaname, tablename) AS name FROM pg_tables
                WHERE schemaname = $1
                UNION ALL
                SELECT 2, 'SEQUENCE', format('%I.%I', s.schemaname, s.sequencename) FROM pg_sequences s
                WHERE s.schemaname = $1 AND NOT EXISTS (
                    SELECT FROM pg_depend d WHERE d.objid = format('%I.%I', s.schemaname, s.sequencename)::regclass
                    AND d.deptype IN ('a', 'i'))
                UNION ALL
                SELECT 3, 'FUNCTION', p.oid::regprocedure::text FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
                ORDER BY 1, 3
                """,
                schema,
            )
            for _, kind, name in objects:
                await connection.execute(f'ALTER {kind} {name} OWNER TO "{schema}"')
            if auditor:
                await connection.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO auditor')
                await connection.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO auditor')
            logger.info("schema %s is owned by its role", schema)
        if auditor:
            await connection.execute(audit_chain.ANCHORS_DDL)
            await connection.execute(f'GRANT CREATE ON DATABASE "{database}" TO auditor')
            await connection.execute("ALTER SCHEMA audit OWNER TO auditor")
            await connection.execute("ALTER TABLE audit.anchors OWNER TO auditor")
    finally:
        await connection.close()


async def migrate_all(settings: ServiceSettings) -> None:
    for schema, migrations, tables in SERVICES:
        pool = await create_pool(str(settings.database_url), schema, max_size=1)  # creates the schema
        await pool.close()
        if tables:  # before the migrations: their audit chain goes over the events' table
            await asyncio.to_thread(create_event_store, settings, schema, tables)
        await migrate_schema(str(settings.database_url), schema, migrations)
        logger.info("schema %s is up to date", schema)


async def main(settings: MigrationSettings) -> None:
    await migrate_all(settings)
    if owners := [schema.strip() for schema in settings.schema_owners.split(",") if schema.strip()]:
        await hand_schemas_to_their_roles(str(settings.database_url), owners)


if __name__ == "__main__":
    settings = MigrationSettings()
    setup_logging("migrate", settings.log_level)
    asyncio.run(main(settings))
