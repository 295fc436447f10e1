"""The migration Job's command on an empty database, twice (a re-run of the Job changes nothing)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from devstack.postgres import EmbeddedPostgres
from devstack.process import free_port


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", free_port(), None, durable=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.migrate"],
        env={**os.environ, "DATABASE_URL": database_url},
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
        ("scoring", "complaint_periods"),
        ("scoring", "consumer_inbox"),
        ("escalation", "consumer_epochs"),
        ("projections", "complaint_summaries"),
        ("projections", "score_changes"),
    } <= tables
