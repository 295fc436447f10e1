"""Child processes of the local stack: started, stopped cleanly, or killed outright."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import httpx


def readable(name: str, line: str) -> str:
    """A process's output line for the terminal: prefixed with its name, a JSON log line as time, level, logger
    and message (and its trace id, if any) rather than as JSON."""
    prefix = f"{name:<12}|"
    try:
        entry = json.loads(line)
    except ValueError:
        return f"{prefix} {line}"
    if not isinstance(entry, dict) or "message" not in entry:
        return f"{prefix} {line}"
    trace = f" trace={entry['trace_id']}" if "trace_id" in entry else ""
    where = f"{entry.get('time', '')} {entry.get('level', '')} {entry.get('logger', '')}"
    text = f"{prefix} {where}: {entry['message']}{trace}"
    return "\n".join([text, *(f"{prefix}   {extra}" for extra in str(entry.get("exc_info", "")).splitlines())])


class StartError(RuntimeError):
    pass


class ManagedProcess:
    """One child process whose output goes to a log file (or the terminal if none)."""

    stop_signal = signal.SIGTERM

    def __init__(self, name: str, log_path: Path | None) -> None:
        self.name = name
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self.wanted_up = False  # a supervisor restarts the process if it dies while this is set

    def _spawn(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> None:
        output: int | BinaryIO
        if self.log_path is None:
            output = subprocess.PIPE  # to the terminal, each line named after its process (`readable`)
        else:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_path.open("ab")
        # A session of its own, so Ctrl-C reaches only the supervisor, which then
        # stops the children in order.
        self.popen = subprocess.Popen(
            list(command),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            user=user,
            start_new_session=True,
        )
        if self.popen.stdout is not None:
            threading.Thread(target=self._to_terminal, args=(self.popen.stdout,), daemon=True).start()
        elif not isinstance(output, int):
            output.close()

    def _to_terminal(self, lines: BinaryIO) -> None:
        for line in lines:
            sys.stdout.write(readable(self.name, line.decode(errors="replace").rstrip("\n")) + "\n")
            sys.stdout.flush()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_until_answering(self, url: str, timeout: float) -> None:
        """Until `url` answers 200; fails at once if the process exits meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise StartError(f"{self.name} exited while starting:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise StartError(f"{self.name} did not answer {url} within {timeout}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        self.wanted_up = False
        if self.popen is not None and self.running:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout: float = 15) -> None:
        self.wanted_up = False
        if self.popen is None or not self.running:
            return
        os.killpg(self.popen.pid, self.stop_signal)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, *, timeout: float, process: ManagedProcess, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running:
            raise StartError(f"{process.name} exited while starting:\n{process.log_tail()}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise StartError(f"{process.name} did not listen on {host}:{port} within {timeout}s:\n{process.log_tail()}")
