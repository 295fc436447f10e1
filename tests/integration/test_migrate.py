"""The migration Job's command on an empty database, twice (a re-run of the Job changes nothing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from devstack.postgres import EmbeddedPostgres


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
        ("scoring", "halls"),
        ("scoring", "score_changes"),
        ("scoring", "consumer_inbox"),
        ("escalation", "consumer_epochs"),
        ("projections", "complaint_summaries"),
        ("projections", "score_changes"),
    } <= tables
