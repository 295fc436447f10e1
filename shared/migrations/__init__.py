"""Versioned schema migrations, with yoyo: each service's schema records in its own `_yoyo_migration` table
which migrations it holds, so an upgrade applies only what is new, once.

A schema's migrations are the shared ones it needs (`RELAY`, `CONSUMER`, `AUDIT_CHAIN`, folders here) and
its service's own `migrations/` folder, applied in the order given. yoyo knows a migration by its file name
alone, so every name starts with its folder's. Each `*_0001_baseline` is the schema as the last release
before versioning left it, written idempotently: a database of any earlier release adopts versioning by
applying it. A change is a new file; a released migration is never edited.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from yoyo import get_backend, read_migrations

logger = logging.getLogger(__name__)

RELAY = Path(__file__).parent / "relay"
CONSUMER = Path(__file__).parent / "consumer"
AUDIT_CHAIN = Path(__file__).parent / "audit_chain"  # after the event store's table, which it chains
# One migrator per schema at a time. A session lock rather than yoyo's lock row: PostgreSQL lets go of it when
# a killed pod's connection ends, where a row would stay behind and stop every later start.
MIGRATION_LOCK = 0x6D69_6772  # with the schema's hash as the second key


def yoyo_url(database_url: str, schema: str) -> str:
    """`database_url` for yoyo's psycopg 3 backend, its session confined to `schema`."""
    parts = urlsplit(database_url)
    query = urlencode([*parse_qsl(parts.query), ("schema", schema)])
    return urlunsplit(parts._replace(scheme="postgresql+psycopg", query=query))


def apply_migrations(database_url: str, schema: str, sources: Sequence[Path]) -> list[str]:
    """Applies those migrations of `sources` that `schema` (which must exist) lacks; returns their ids."""
    backend = get_backend(yoyo_url(database_url, schema))
    try:
        backend.execute("SELECT pg_advisory_lock(:lock, hashtext(:schema))", {"lock": MIGRATION_LOCK, "schema": schema})
        pending = backend.to_apply(read_migrations(*map(str, sources)))
        backend.apply_migrations(pending)
        return [str(migration.id) for migration in pending]
    finally:
        backend.connection.close()  # and with it the lock


async def migrate_schema(database_url: str, schema: str, sources: Sequence[Path]) -> None:
    if applied := await asyncio.to_thread(apply_migrations, database_url, schema, sources):
        logger.info("schema %s: applied %s", schema, ", ".join(applied))
