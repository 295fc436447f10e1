"""The migration Job's command on an empty database, twice (a re-run of the Job changes nothing)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import yaml

from devstack.postgres import EmbeddedPostgres


def migrate(database_url: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.migrate"],
        env={**os.environ, "DATABASE_URL": database_url, **(env or {})},
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_migration_job_creates_every_services_tables_and_can_run_again(postgres: EmbeddedPostgres) -> None:
    for _ in range(2):
        run = migrate(postgres.url)
        assert run.returncode == 0, run.stderr

    connection = await asyncpg.connect(postgres.url)
    try:
        tables = {
            (row["table_schema"], row["table_name"])
            for row in await connection.fetch("SELECT table_schema, table_name FROM information_schema.tables")
        }
    finally:
        await connection.close()
    assert {
        ("complaints", "complaints_events"),
        ("complaints", "relay_positions"),
        ("complaints", "event_trace_contexts"),
        ("escalation", "escalation_events"),
        ("escalation", "sla_deadlines"),
        ("scoring", "scoring_events"),
        ("scoring", "scoring_snapshots"),
        ("scoring", "complaint_periods"),
        ("scoring", "halls"),
        ("scoring", "score_changes"),
        ("scoring", "consumer_inbox"),
        ("escalation", "consumer_epochs"),
        ("projections", "complaint_summaries"),
        ("projections", "score_changes"),
    } <= tables


def owner_memberships() -> list[str]:
    """The roles CloudNativePG makes the owner `app` a member of (deploy/k8s/base/postgres.yaml)."""
    (cluster,) = yaml.safe_load_all((Path(__file__).parents[2] / "deploy/k8s/base/postgres.yaml").read_text())
    (app,) = (role for role in cluster["spec"]["managed"]["roles"] if role["name"] == "app")
    return [str(role) for role in app["inRoles"]]


def as_role(database_url: str, role: str) -> str:
    return database_url.replace("postgres@", f"{role}@", 1)


async def test_each_schema_is_its_own_roles_and_no_service_writes_another_ones_events(
    postgres: EmbeddedPostgres,
) -> None:
    """As in Kubernetes: CloudNativePG makes the roles, the Job hands each schema to its role."""
    admin = await asyncpg.connect(postgres.url)
    try:
        for role in ("complaints", "escalation", "scoring", "projections", "auditor"):
            await admin.execute(f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN END $$")
    finally:
        await admin.close()
    run = await asyncio.to_thread(migrate, postgres.url, {"SCHEMA_OWNERS": "complaints,escalation,scoring,projections"})
    assert run.returncode == 0, run.stderr

    async def refused(role: str, statement: str) -> bool:
        connection = await asyncpg.connect(as_role(postgres.url, role))
        try:
            await connection.execute(statement)
        except asyncpg.InsufficientPrivilegeError:
            return True
        finally:
            await connection.close()
        return False

    def tamper(schema: str) -> str:
        return f"UPDATE {schema}.{schema}_events SET topic = topic"  # noqa: S608 - the test's own names

    assert await refused("projections", tamper("complaints"))
    assert await refused("projections", "DELETE FROM scoring.scoring_events")
    assert await refused("complaints", tamper("escalation"))
    assert await refused("auditor", "DELETE FROM complaints.complaints_events")
    assert not await refused("complaints", tamper("complaints"))
    assert not await refused("auditor", "SELECT count(*) FROM escalation.event_hashes")
    assert not await refused("auditor", "DELETE FROM audit.anchors")  # the anchors are the auditor's alone
    assert await refused("complaints", "DELETE FROM audit.anchors")
    assert not await refused("projections", "SELECT count(*) FROM projections.complaint_summaries")


async def test_the_next_releases_job_migrates_schemas_their_roles_own_as_the_owner_app(
    postgres: EmbeddedPostgres,
) -> None:
    """As in Kubernetes on an upgrade: the schemas are their roles' since the first Job; the Job logs in as
    CloudNativePG's `app`, which owns the database and is in every service's role (postgres.yaml)."""
    admin = await asyncpg.connect(postgres.url)
    try:
        for role in ("complaints", "escalation", "scoring", "projections", "auditor"):
            await admin.execute(f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN END $$")
        memberships = ", ".join(owner_memberships())
        await admin.execute(
            f"DO $$ BEGIN CREATE ROLE app LOGIN IN ROLE {memberships}; EXCEPTION WHEN duplicate_object THEN END $$"
        )
        await admin.execute("ALTER DATABASE postgres OWNER TO app")
    finally:
        await admin.close()
    owners = {"SCHEMA_OWNERS": "complaints,escalation,scoring,projections"}
    assert (first := migrate(postgres.url, owners)).returncode == 0, first.stderr
    # A migration the next release brings, not yet applied anywhere
    connection = await asyncpg.connect(postgres.url)
    try:
        await connection.execute(
            "DELETE FROM projections._yoyo_migration WHERE migration_id = 'consumer_0002_dead_letter_replays'"
        )
        await connection.execute("DROP TABLE projections.dead_letter_replays")
    finally:
        await connection.close()

    upgrade = migrate(as_role(postgres.url, "app"), owners)

    assert upgrade.returncode == 0, upgrade.stderr
    connection = await asyncpg.connect(postgres.url)
    try:
        owner = await connection.fetchval(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'projections' AND tablename = 'dead_letter_replays'"
        )
    finally:
        await connection.close()
    assert owner == "projections"
