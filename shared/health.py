"""`/healthz` (the process runs) and `/readyz` (its database answers, and its consumer, if any, is assigned).

The broker is not a readiness check of its own: the complaints service takes complaints while Kafka is
down (its outbox keeps them until the relay can publish, and `relay_publish_failures_total` with the
RelayCannotPublish alert says so), so a broker outage must not take its pods out of service. A consumer
loses its assignment when the broker goes, and with it its readiness. `/readyz` still reports whether the
broker accepts connections, for whoever looks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import asyncpg
from fastapi import APIRouter
from fastapi.responses import JSONResponse

CHECK_TIMEOUT_SECONDS = 2.0


class Consumer(Protocol):
    @property
    def live(self) -> bool:
        """It has joined its consumer group, holds partitions and runs."""
        ...


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


def health_router(
    get_pool: Callable[[], asyncpg.Pool | None],
    bootstrap_servers: str,
    consumer: Consumer | None = None,
) -> APIRouter:
    """`consumer`: the service's consumer, if it has one (`shared.streaming.ConsumerStatus`)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process is serving requests."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: the database is reachable, and the consumer (if any) is assigned and live.

        503 until then, with each check's outcome (`"consumer": false` while it joins its group).
        The read API answers meanwhile: it serves what has been consumed so far. `broker` says whether the
        broker accepts connections; it does not decide readiness.
        """
        pool = get_pool()
        checks = {"database": pool is not None and await database_reachable(pool)}
        if consumer is not None:
            checks["consumer"] = consumer.live
        ready = all(checks.values())
        return JSONResponse(
            {
                "status": "ready" if ready else "not_ready",
                "checks": checks,
                "broker": await broker_reachable(bootstrap_servers),
            },
            status_code=200 if ready else 503,
        )

    return router
