"""The whole local stack, one process per part, all data under one folder."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from devstack import postgres_exporter, prometheus
from devstack.broker import TansuBroker
from devstack.outbound import OutboundStandIns
from devstack.postgres import EmbeddedPostgres
from devstack.process import ManagedProcess, StartError, free_port, port_is_free
from shared.auth import AuthSettings, Role, issue_staff_token
from shared.organisation import OrgUnit

SERVICES = ("complaints", "escalation", "scoring", "projections")
DEFAULT_PORTS = {
    "complaints": 8001,
    "escalation": 8002,
    "scoring": 8003,
    "projections": 8004,
    "broker": 9092,
    "postgres": 5432,
    "prometheus": 9090,
    "postgres_exporter": 9187,  # PostgreSQL's metrics for that Prometheus
    "outbound": 8025,  # the recording messaging gateway, and reading the SMTP server's mail
    "smtp": 2525,
}


class ServiceProcess(ManagedProcess):
    def __init__(self, name: str, port: int, env: dict[str, str], log_path: Path | None) -> None:
        super().__init__(name, log_path)
        self.port = port
        self.env = env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        """Spawns the service and waits until it serves HTTP (`/healthz`); its consumer may still be joining."""
        self._spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"services.{self.name}.main:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--ws",
                "none",  # no websockets: not loading their library saves a fifth of the start-up
            ],
            env=self.env,
        )
        self.wait_until_answering(f"{self.url}/healthz", timeout)
        self.wanted_up = True

    def wait_until_ready(self, timeout: float = 60) -> None:
        """Until `/readyz` answers 200: database and broker reachable, and its consumer (if any) live."""
        self.wait_until_answering(f"{self.url}/readyz", timeout)


@dataclass
class StackConfig:
    data_dir: Path
    ports: dict[str, int]
    durable: bool = True
    log_to_files: bool = True
    external_database_url: str | None = None
    external_bootstrap_servers: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    prometheus_interval: str | None = None  # scrape and rule interval; None: no local Prometheus
    # The SMTP server and messaging gateway the customers' notifications go to; without them none are sent.
    outbound: bool = True

    @classmethod
    def from_environment(cls, data_dir: Path) -> StackConfig:
        """Default ports, `<PART>_PORT` to override; DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS to use external ones."""
        ports = {name: int(os.environ.get(f"{name.upper()}_PORT", port)) for name, port in DEFAULT_PORTS.items()}
        return cls(
            data_dir=data_dir,
            ports=ports,
            log_to_files=False,
            external_database_url=os.environ.get("DATABASE_URL"),
            external_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
            prometheus_interval="15s" if prometheus.installed() else None,
        )

    @classmethod
    def for_tests(cls, data_dir: Path) -> StackConfig:
        """Without notifications unless a test asks for them: they would add to every complaint's timeline."""
        ports = {name: free_port() for name in DEFAULT_PORTS}
        return cls(data_dir=data_dir, ports=ports, durable=False, outbound=False)


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.notes: list[str] = []
        self.postgres: EmbeddedPostgres | None = None
        self.broker: TansuBroker | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.replicas: list[ServiceProcess] = []
        self.prometheus: prometheus.Prometheus | None = None
        self.postgres_exporter: postgres_exporter.PostgresExporter | None = None
        self.outbound: OutboundStandIns | None = None
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)

    def _log(self, name: str) -> Path | None:
        return self.config.data_dir / "logs" / f"{name}.log" if self.config.log_to_files else None

    def _port(self, name: str) -> int:
        port = self.config.ports[name]
        if not port_is_free(port):
            taken, port = port, free_port()
            self.notes.append(f"{name}: port {taken} is taken, using {port}")
            self.config.ports[name] = port
        return port

    @property
    def database_url(self) -> str:
        if self.config.external_database_url:
            return self.config.external_database_url
        assert self.postgres is not None
        return self.postgres.url

    @property
    def bootstrap_servers(self) -> str:
        if self.config.external_bootstrap_servers:
            return self.config.external_bootstrap_servers
        assert self.broker is not None
        return self.broker.bootstrap_servers

    def service_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "DATA_DIR": str(self.config.data_dir),
            "ENVIRONMENT": "development",  # the development secret and test clocks need it said outright
            "BROKER_RESET_WATCHDOG": "true",  # the local broker keeps its topics in memory only
            **(self.outbound.service_env() if self.outbound else {}),
            **self.config.extra_env,
        }

    def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.config.external_database_url:
            self.postgres = EmbeddedPostgres(
                self.config.data_dir / "postgres",
                self._port("postgres"),
                self._log("postgres"),
                durable=self.config.durable,
            )
            self.postgres.start()
        if not self.config.external_bootstrap_servers:
            self.start_fresh_broker()
        if self.config.outbound:
            self.outbound = OutboundStandIns(
                self._port("outbound"), self._port("smtp"), self.config.data_dir / "mail", self._log("outbound")
            )
            self.outbound.start()
        for name in SERVICES:
            self.services[name] = ServiceProcess(name, self._port(name), self.service_env(), self._log(name))
            self.services[name].start()
        for service in self.services.values():  # the consumers join their groups meanwhile, side by side
            service.wait_until_ready()
        if self.config.prometheus_interval:
            try:
                self.start_prometheus(self.config.prometheus_interval)
            except StartError as error:  # optional: the stack runs without it
                self.notes.append(f"no local Prometheus: {error}")
        elif not prometheus.installed():
            self.notes.append("no local Prometheus: install Debian's `prometheus` package to get one")
        self._supervisor.start()

    def start_prometheus(self, interval: str) -> None:
        targets = {name: f"127.0.0.1:{service.port}" for name, service in self.services.items()}
        targets.update(self.start_postgres_exporter())
        self.prometheus = prometheus.Prometheus(
            self.config.data_dir / "prometheus", self._port("prometheus"), targets, self._log("prometheus"), interval
        )
        self.prometheus.start()

    def start_postgres_exporter(self) -> dict[str, str]:
        """PostgreSQL's metrics as CloudNativePG names them, if the exporter is installed: its scrape target, the
        job `postgres`."""
        if not postgres_exporter.installed():
            self.notes.append("no PostgreSQL metrics: install Debian's `prometheus-postgres-exporter` to get them")
            return {}
        self.postgres_exporter = postgres_exporter.PostgresExporter(
            self._port("postgres_exporter"), self.database_url, self._log("postgres-exporter")
        )
        try:
            self.postgres_exporter.start()
        except StartError as error:  # optional, as Prometheus is
            self.notes.append(f"no PostgreSQL metrics: {error}")
            return {}
        return {"postgres": self.postgres_exporter.target}

    def _supervise(self) -> None:
        """Restarts a service that died on its own, as Kubernetes would; deliberate kills are left alone."""
        while not self._stopping.wait(0.5):
            for service in self.services.values():
                if service.wanted_up and not service.running:
                    print(f"{service.name} exited; restarting it", file=sys.stderr, flush=True)
                    try:
                        service.start()
                    except StartError as error:
                        print(error, file=sys.stderr, flush=True)

    def write_dev_token(self) -> Path:
        """An admin bearer token for the whole group, for local use only."""
        token = issue_staff_token(
            AuthSettings(environment="development"), "dev-admin", OrgUnit(), [Role.admin], timedelta(hours=24)
        )
        path = self.config.data_dir / "dev-token"
        path.write_text(token + "\n")
        path.chmod(0o600)
        return path

    def start_fresh_broker(self) -> None:
        """A new broker process on the same port; the memory-only broker starts empty."""
        port = self.broker.port if self.broker else self._port("broker")
        self.broker = TansuBroker(port, self._log("broker"))
        self.broker.start()

    def start_replica(self, name: str) -> ServiceProcess:
        """Another process of the same service on its own port, as a second Kubernetes pod would be."""
        replica = ServiceProcess(name, free_port(), self.service_env(), self._log(f"{name}-{len(self.replicas) + 2}"))
        replica.start()
        replica.wait_until_ready()
        self.replicas.append(replica)
        return replica

    def restart_service(self, name: str) -> None:
        """Starts the service again, with the stack's current settings, and waits until it is ready."""
        service = self.services[name]
        service.env = self.service_env()
        service.start()
        service.wait_until_ready()

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor.is_alive():
            self._supervisor.join()
        for service in [*self.replicas, *reversed(list(self.services.values()))]:
            service.stop()
        if self.prometheus:
            self.prometheus.stop()
        if self.postgres_exporter:
            self.postgres_exporter.stop()
        if self.outbound:
            self.outbound.stop()
        if self.broker:
            self.broker.stop()
        if self.postgres:
            self.postgres.stop()

    def first_exited(self) -> ManagedProcess | None:
        """PostgreSQL or the broker, if either has died; services are restarted by the supervisor."""
        parts = [self.postgres, self.broker]
        return next((part for part in parts if part is not None and not part.running), None)

    def urls(self) -> dict[str, str]:
        urls = {name: service.url for name, service in self.services.items()}
        urls["broker"] = self.bootstrap_servers
        urls["postgres"] = self.database_url
        if self.prometheus:
            urls["prometheus"] = self.prometheus.url
        if self.outbound:
            urls["gateway"] = f"{self.outbound.url}/messages"
            urls["mail"] = f"{self.outbound.url}/mail"
        return urls
