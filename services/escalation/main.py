"""Composition root of the escalation service: `uvicorn --factory services.escalation.main:create_app`.

So far: the working-time calendar and the SLA policies. The clock model exists (`clocks.py`), but
nothing feeds it complaint events or fires its deadlines yet.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.escalation import api
from services.escalation.policy import load_policies
from shared.auth import Authenticator, AuthSettings
from shared.database import create_pool
from shared.errors import install_error_handlers
from shared.health import health_router
from shared.settings import ServiceSettings

SCHEMA = "escalation"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(str(settings.database_url), SCHEMA, max_size=2)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(title="escalation", version="1", lifespan=lifespan)
    app.state.pool = None
    app.state.authenticator = Authenticator(AuthSettings())
    app.state.calendars = api.Calendars()
    app.state.policies = load_policies()  # an invalid policy file stops the service here, naming the entry
    app.include_router(api.router)
    app.include_router(api.policies_router)
    app.include_router(health_router(lambda: app.state.pool, settings.kafka_bootstrap_servers))
    install_error_handlers(app)
    return app
