"""A local Prometheus (Debian's `prometheus`, when installed) scraping every service of the stack and
PostgreSQL's exporter (devstack/postgres_exporter.py), with the same recording and alerting rules as
production (deploy/prometheus)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from devstack.process import ManagedProcess

PROMETHEUS_RULE = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "prometheus-rules.yaml"


def rule_groups() -> list[dict[str, Any]]:
    """The `groups` of the PrometheusRule, as a Prometheus rule file holds them."""
    document = yaml.safe_load(PROMETHEUS_RULE.read_text(encoding="utf-8"))
    groups: list[dict[str, Any]] = document["spec"]["groups"]
    return groups


def installed() -> bool:
    return shutil.which("prometheus") is not None


class Prometheus(ManagedProcess):
    def __init__(
        self, data_dir: Path, port: int, targets: dict[str, str], log_path: Path | None, interval: str = "15s"
    ) -> None:
        """`targets`: job name (a service, or `postgres` for its exporter) to host:port."""
        super().__init__("prometheus", log_path)
        self.data_dir = data_dir
        self.port = port
        self.targets = targets
        self.interval = interval

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        rules = self.data_dir / "rules.yml"
        rules.write_text(yaml.safe_dump({"groups": rule_groups()}, allow_unicode=True))
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in self.targets.items()
            ],
        }
        path = self.data_dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self, timeout: float = 30) -> None:
        self._spawn(
            [
                "prometheus",
                f"--config.file={self.write_config()}",
                f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ]
        )
        self.wait_until_answering(f"{self.url}/-/ready", timeout)
