"""The image, built with buildah from the Dockerfile (`make image`), runs the migration and all four services
against a real PostgreSQL and broker, and one complaint goes from its POST to its timeline through them.

It also holds what it must: the services run as UID 10001; no compiler, no tests, no `.git`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack import image
from devstack.broker import TansuBroker
from devstack.postgres import EmbeddedPostgres
from devstack.process import free_port
from shared.auth import Role
from shared.organisation import OrgUnit
from tests.integration.harness import bearer, complaint_body, staff_token

SERVICES = ("complaints", "escalation", "scoring", "projections")
# buildah's chroot runtime copies itself into a sealed memfd before it runs anything; under load the kernel can
# refuse the seal for a moment (EBUSY). Nothing of the command has run then, so it is launched again.
LAUNCH_FAILED = "sealing memfd copy"
LAUNCHES = 3


@pytest.fixture(scope="module")
def built() -> Iterator[str]:
    seconds = image.build()
    print(f"image {image.IMAGE}: built in {seconds:.0f} s, {image.size_of() / 2**20:.0f} MiB")
    yield image.IMAGE


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    server = TansuBroker(free_port(), tmp_path_factory.mktemp("broker") / "broker.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class ImageContainer:
    """A working container of the image; each command runs in it as the image's user, on the host's network."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = image.run(
            "buildah", "from", "--name", f"sq-test-{name}-{uuid.uuid4().hex[:8]}", image.IMAGE
        ).stdout.strip()
        self.env = env

    def command(self, *argv: str) -> list[str]:
        environment = [f"--env={key}={value}" for key, value in self.env.items()]
        return ["buildah", "run", "--isolation", "chroot", "--network", "host", *environment, self.name, "--", *argv]

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Runs the command to its end, launched again if the runtime could not launch it."""
        for _ in range(LAUNCHES):
            done = subprocess.run(self.command(*argv), capture_output=True, text=True)
            if LAUNCH_FAILED not in done.stderr:
                break
        return done

    def serve(self, log: Path, *argv: str) -> subprocess.Popen[bytes]:
        """Starts the command in the background, its output to `log`."""
        with log.open("wb") as output:
            return subprocess.Popen(
                self.command(*argv), stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )

    def remove(self) -> None:
        subprocess.run(["buildah", "rm", self.name], capture_output=True, check=False)


def ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> bool:
    """Whether the service became ready; False if the runtime could not launch it. Fails if it exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert LAUNCH_FAILED in (output := log.read_text()), f"{url} exited:\n{output[-3000:]}"
            return False
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not ready within {timeout} s:\n{log.read_text()[-3000:]}")


def test_the_image_runs_the_migration_and_every_service_and_takes_a_complaint_to_its_timeline(
    built: str, postgres: EmbeddedPostgres, broker: TansuBroker, tmp_path: Path
) -> None:
    started = time.monotonic()
    env = {
        "DATABASE_URL": postgres.url,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "ENVIRONMENT": "development",
    }
    containers = {name: ImageContainer(name, env) for name in ("migrate", *SERVICES)}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        inside = containers["migrate"]
        assert (user := inside.run("id", "-u")).stdout == "10001\n", user.stderr
        probe = "command -v gcc cc c++ || true; ls -d /app/tests /app/.git /app/.venv 2>/dev/null || true"
        assert ((found := inside.run("sh", "-c", probe)).returncode, found.stdout) == (0, ""), found.stderr
        migrated = inside.run("python", "-m", "services.migrate")
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr

        ports = {name: free_port() for name in SERVICES}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}

        def serve(name: str) -> subprocess.Popen[bytes]:
            app = f"services.{name}.main:create_app"
            argv = ("uvicorn", "--factory", app, "--host", "127.0.0.1", "--port", str(ports[name]))
            processes.append(process := containers[name].serve(tmp_path / f"{name}.log", *argv))
            return process

        launched = {name: serve(name) for name in SERVICES}
        for name, process in launched.items():
            launches = 1
            while not ready(urls[name], process, tmp_path / f"{name}.log"):
                assert launches < LAUNCHES, f"the runtime could not launch {name} {LAUNCHES} times"
                process, launches = serve(name), launches + 1

        admin = bearer(staff_token("image-test", OrgUnit(), Role.admin))
        hall = {
            "hall_id": "IMG-HALL-1",
            "name": "镜像营业厅",
            "province": "广东",
            "city": "深圳",
            "level": 1,
            "ownership": "self_operated",
        }
        assert httpx.post(f"{urls['complaints']}/api/v1/halls", json=hall, headers=admin, timeout=10).status_code == 201
        created = httpx.post(
            f"{urls['complaints']}/api/v1/complaints", json=complaint_body("IMG-HALL-1"), headers=admin, timeout=10
        )
        assert created.status_code == 201, created.text
        timeline_url = f"{urls['projections']}/api/v1/complaints/{created.json()['id']}/timeline"
        deadline = time.monotonic() + 60
        while (timeline := httpx.get(timeline_url, headers=admin, timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, f"not on the timeline: {timeline.text}"
            time.sleep(0.3)
        assert [event["type"] for event in timeline.json()["events"]] == ["ComplaintRegistered"]
        print(f"image test: migration, four services and one complaint in {time.monotonic() - started:.0f} s")
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(20)
        for container in containers.values():
            container.remove()
