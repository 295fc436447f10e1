"""How every Kafka client of a service authenticates: SCRAM over SASL in Kubernetes (a Strimzi KafkaUser
per service, whose ACLs let it write only its own topics), nothing against the local broker.

Read once from the environment (`KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`,
`KAFKA_SASL_PASSWORD`), so that every client a service makes, wherever it is made, says who it is.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaAuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None


@cache
def kafka_auth() -> KafkaAuthSettings:
    settings = KafkaAuthSettings()
    if settings.security_protocol != "PLAINTEXT" and not (settings.sasl_username and settings.sasl_password):
        raise ValueError("KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are needed with SASL")
    return settings


def client_options() -> dict[str, Any]:
    """Keyword arguments for an aiokafka client."""
    settings = kafka_auth()
    if settings.security_protocol == "PLAINTEXT":
        return {}
    assert settings.sasl_password is not None
    options: dict[str, Any] = {
        "security_protocol": settings.security_protocol,
        "sasl_mechanism": settings.sasl_mechanism,
        "sasl_plain_username": settings.sasl_username,
        "sasl_plain_password": settings.sasl_password.get_secret_value(),
    }
    if settings.security_protocol == "SASL_SSL":
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context()
    return options


def faust_credentials() -> Any:
    """`broker_credentials` for a faust app (None: none needed)."""
    settings = kafka_auth()
    if settings.security_protocol == "PLAINTEXT":
        return None
    import faust

    assert settings.sasl_password is not None
    ssl_context = None
    if settings.security_protocol == "SASL_SSL":
        from aiokafka.helpers import create_ssl_context

        ssl_context = create_ssl_context()
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password.get_secret_value(),
        mechanism=settings.sasl_mechanism,
        ssl_context=ssl_context,
    )
