"""`/healthz` (the process runs) and `/readyz` (its database and broker answer)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import asyncpg
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from shared.database import create_pool

CHECK_TIMEOUT_SECONDS = 2.0


async def database_reachable(pool: asyncpg.Pool) -> bool:
    try:
        await asyncio.wait_for(pool.fetchval("SELECT 1"), CHECK_TIMEOUT_SECONDS)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True


async def broker_reachable(bootstrap_servers: str) -> bool:
    """True if any bootstrap server accepts a connection."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), CHECK_TIMEOUT_SECONDS)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


def health_router(get_pool: Callable[[], asyncpg.Pool | None], bootstrap_servers: str) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process is serving requests."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: the database and the broker are reachable."""
        pool = get_pool()
        checks = {
            "database": pool is not None and await database_reachable(pool),
            "broker": await broker_reachable(bootstrap_servers),
        }
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    return router


def health_only_app(title: str, schema: str, database_url: str, bootstrap_servers: str) -> FastAPI:
    """A service that so far only reports its health; its features are not built yet."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(database_url, schema, max_size=2)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(title=title, version="1", lifespan=lifespan)
    app.state.pool = None
    app.include_router(health_router(lambda: app.state.pool, bootstrap_servers))
    return app
