"""asyncpg pools confined to one service's schema."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    Connection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]  # one taken from a pool
else:  # not subscriptable at run time
    Connection = asyncpg.pool.PoolConnectionProxy


# A server that takes a connection but never answers: a request waits this long, not asyncpg's 60 s, before its 503.
CONNECT_TIMEOUT_SECONDS = 5


async def keep_session_state(connection: asyncpg.Connection) -> None:
    """Takes a connection back without asyncpg's reset query (unlock, close, unlisten, reset all): one
    more round trip per use (0.38 -> 0.33 ms CPU per acquire-insert-commit, measured in isolation).
    asyncpg still rolls back an open transaction; whoever takes a session-level lock or setting on a
    pool connection undoes it."""


async def create_pool(database_url: str, schema: str, *, max_size: int = 10) -> asyncpg.Pool:
    """Creates the schema if needed and returns a pool whose search_path is that schema."""
    connection = await asyncpg.connect(database_url, timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        # Asked first: a service's own role may not create schemas, only own the one it is given.
        if not await connection.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    except asyncpg.UniqueViolationError:
        pass  # another replica created it at the same moment
    finally:
        await connection.close()
    pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        timeout=CONNECT_TIMEOUT_SECONDS,
        server_settings={"search_path": schema},
        reset=keep_session_state,
    )
    assert pool is not None
    return pool
