"""The intake benchmark's yardstick: the complaints service's request body, validated by the same
pydantic model, and one durable INSERT per request through asyncpg; nothing else."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
from fastapi import FastAPI

from services.complaints.schemas import ComplaintCreate


def create_app() -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=4, max_size=10)
        await pool.execute("CREATE TABLE IF NOT EXISTS bare_complaints (id uuid PRIMARY KEY, body jsonb NOT NULL)")
        app.state.pool = pool
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/complaints", status_code=201)
    async def register(complaint: ComplaintCreate) -> dict[str, str]:
        complaint_id = uuid.uuid4()
        await app.state.pool.execute(
            "INSERT INTO bare_complaints VALUES ($1, $2)", complaint_id, json.dumps(complaint.model_dump(mode="json"))
        )
        return {"id": str(complaint_id)}

    return app
