"""Settings every service shares; each value can be overridden by an environment variable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, PostgresDsn
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
    broker_reset_watchdog: bool = Field(
        default=False,
        description="Consumers watch for a broker that lost its data and move to a new group (shared/streaming.py):"
        " for the local stack's memory-only broker; off, every consumer's group is its own name, as KEDA expects.",
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
    database_pool_size: int = Field(
        default=10, ge=1, le=100, description="The most connections of the service's asyncpg pool (the read side)."
    )
    event_store_pool_size: int = Field(
        default=5, ge=1, le=100, description="Connections the event store keeps open (eventsourcing's pool)."
    )
    event_store_max_overflow: int = Field(
        default=5, ge=0, le=100, description="Connections the event store may open beyond its pool under load."
    )
    data_dir: Path = Path(".var")
    log_level: str = "INFO"
    traces_exporter: TracesExporter = Field(
        default="none", validation_alias=AliasChoices("otel_traces_exporter", "traces_exporter")
    )
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
            "POSTGRES_POOL_SIZE": str(self.event_store_pool_size),
            "POSTGRES_MAX_OVERFLOW": str(self.event_store_max_overflow),
        }


@dataclass(frozen=True)
class ConnectionUse:
    """What one process of a service holds open to PostgreSQL at most: its asyncpg pool, its event store's pool
    with overflow if it keeps one, and its own LISTEN connections. Each composition root declares its own;
    the connection budget (deploy/k8s/README.md) adds them up over every replica."""

    event_store: bool
    listeners: int

    def most(self, settings: ServiceSettings) -> int:
        event_store = settings.event_store_pool_size + settings.event_store_max_overflow if self.event_store else 0
        return settings.database_pool_size + event_store + self.listeners
