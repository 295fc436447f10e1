"""Composition root of the scoring service: `uvicorn --factory services.scoring.main:create_app`."""

from fastapi import FastAPI

from shared.health import health_only_app
from shared.settings import ServiceSettings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    return health_only_app("scoring", "scoring", str(settings.database_url), settings.kafka_bootstrap_servers)
