"""Composition root of the escalation service: `uvicorn --factory services.escalation.main:create_app`."""

from fastapi import FastAPI

from shared.health import health_only_app
from shared.settings import ServiceSettings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    return health_only_app("escalation", "escalation", str(settings.database_url), settings.kafka_bootstrap_servers)
