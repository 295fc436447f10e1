"""PostgreSQL's metrics as CloudNativePG names them (cnpg_*), for the local Prometheus: Debian's
`prometheus-postgres-exporter`, when installed, running the queries of cnpg-queries.yaml beside this file
and none of its own (its pg_* defaults would be metrics no dashboard reads)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devstack.process import ManagedProcess

COMMAND = "prometheus-postgres-exporter"
QUERIES = Path(__file__).resolve().parent / "cnpg-queries.yaml"
# The label the dashboards tell instances apart by: in Kubernetes the PodMonitor's target has the pod's name.
POD = "postgres"


def installed() -> bool:
    return shutil.which(COMMAND) is not None


def without_tls(database_url: str) -> str:
    """The URL with `sslmode=disable` unless it says otherwise: the exporter's driver (lib/pq) insists on TLS
    by default, and the local server has none."""
    parts = urlsplit(database_url)
    if "sslmode=" in parts.query:
        return database_url
    query = f"{parts.query}&sslmode=disable" if parts.query else "sslmode=disable"
    return urlunsplit(parts._replace(query=query))


class PostgresExporter(ManagedProcess):
    def __init__(self, port: int, database_url: str, log_path: Path | None) -> None:
        super().__init__("pg-exporter", log_path)
        self.port = port
        self.database_url = database_url

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        self._spawn(
            [
                COMMAND,
                f"--web.listen-address={self.target}",
                f"--extend.query-path={QUERIES}",
                "--disable-default-metrics",
                "--disable-settings-metrics",
                "--no-collector.database",
                "--no-collector.bgwriter",
                f"--constantLabels=pod={POD}",
                "--log.level=warn",
            ],
            env={**os.environ, "DATA_SOURCE_NAME": without_tls(self.database_url)},
        )
        self.wait_until_answering(f"http://{self.target}/metrics", timeout)
