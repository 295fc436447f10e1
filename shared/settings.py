"""Settings every service shares; each value can be overridden by an environment variable."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, PostgresDsn
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.clock import Clock, MovableClock, system_clock
from shared.tracing import TracesExporter


class ServiceSettings(BaseSettings):
    """`DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`, ... as environment variables."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    database_url: PostgresDsn = Field(
        default=PostgresDsn("postgresql://postgres@127.0.0.1:5432/postgres"),
        description="PostgreSQL holding this service's own schema.",
    )
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    consumer_fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="How long a consumer's fetch may wait for messages. Kafka answers as soon as one arrives,"
        " the local broker only when the wait is over, so this is its delivery delay.",
    )
    max_request_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="The largest request body a service reads; beyond it, 413 (shared/body_limit.py).",
    )
    max_steps_per_subject: int = Field(
        default=500,
        ge=10,
        description="The most events one complaint or rectification order may hold; steps beyond it get 409.",
    )
    data_dir: Path = Path(".var")
    log_level: str = "INFO"
    traces_exporter: TracesExporter = "none"
    clock_offset_file: Path | None = Field(
        default=None, description="Tests move the service's time with it (see shared/clock.py); never in production."
    )

    def clock(self, environment: str | None) -> Clock:
        if self.clock_offset_file is None:
            return system_clock
        if environment != "development":
            raise ValueError("CLOCK_OFFSET_FILE moves the service's time: for tests, with ENVIRONMENT=development")
        return MovableClock(self.clock_offset_file)

    def eventsourcing_env(self, schema: str) -> dict[str, str]:
        """The `POSTGRES_*` settings the `eventsourcing` library reads."""
        url = urlsplit(str(self.database_url))
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": "shared.event_store:ColumnarRecorder",  # by name: loaded only if used
            "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": url.username or "postgres",
            "POSTGRES_PASSWORD": url.password or "",
            "POSTGRES_SCHEMA": schema,
            "POSTGRES_POOL_SIZE": "10",
            "POSTGRES_MAX_OVERFLOW": "10",
        }
