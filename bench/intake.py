"""Intake throughput: the complaints service on its own against a bare FastAPI + asyncpg service.

Both take the same complaint body under the same `wrk` load (16 connections, C load generator),
against the same durable embedded PostgreSQL, in the same run. The bare service validates the
body with the same pydantic model and does one durable INSERT per request (`bench/bare_intake.py`);
the ratio says how much of that the complaints service keeps, with and without an Idempotency-Key on
each request (a front-line system retrying safely sends one). The complaints service runs alone:
PostgreSQL, the broker and its relay, but no consumer service.

Before that, with the whole stack up, one client posts complaints one at a time, and each
event's delay from commit to the projection's timeline is measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from devstack.process import ManagedProcess, free_port
from devstack.stack import Stack, StackConfig
from shared.auth import AuthSettings, Role, issue_staff_token
from shared.organisation import OrgUnit

CONNECTIONS = 16
SECONDS = 15
SEQUENTIAL_COMPLAINTS = 500
CONSUMERS = ["escalation", "scoring", "projections"]


def admin_headers() -> dict[str, str]:
    token = issue_staff_token(
        AuthSettings(environment="development"), "bench", OrgUnit(), [Role.admin], timedelta(hours=1)
    )
    return {"Authorization": f"Bearer {token}"}


def complaint_body(hall_id: str) -> dict[str, Any]:
    return {
        "hall_id": hall_id,
        "channel": "app",
        "category": "billing",
        "priority": "normal",
        "customer": {"name": "张三", "phone": "13812345678"},
        "description": "benchmark",
    }


def new_hall(complaints_url: str) -> str:
    hall_id = f"BENCH-{uuid.uuid4().hex[:8]}"
    hall = {"hall_id": hall_id, "name": "n", "province": "p", "city": "c", "level": 1, "ownership": "partner"}
    httpx.post(f"{complaints_url}/api/v1/halls", json=hall, headers=admin_headers()).raise_for_status()
    return hall_id


async def sequential_with_delays(complaints_url: str, database_url: str) -> tuple[float, list[float]]:
    """One client posting one complaint at a time; and each event's delay from commit to projection."""
    hall_id = new_hall(complaints_url)
    async with httpx.AsyncClient(timeout=30, headers=admin_headers()) as http:
        started = time.perf_counter()
        for _ in range(SEQUENTIAL_COMPLAINTS):
            (await http.post(f"{complaints_url}/api/v1/complaints", json=complaint_body(hall_id))).raise_for_status()
        rate = SEQUENTIAL_COMPLAINTS / (time.perf_counter() - started)
    database = await asyncpg.connect(database_url)
    query = """
        SELECT extract(epoch FROM i.processed_at - t.occurred_at) AS delay
        FROM projections.timelines t
        JOIN projections.consumer_inbox i ON i.event_id = t.event_id
        WHERE t.details->>'hall_id' = $1
    """
    while len(rows := await database.fetch(query, hall_id)) < SEQUENTIAL_COMPLAINTS:
        await asyncio.sleep(0.05)
    await database.close()
    return rate, sorted(float(row["delay"]) for row in rows)


class BareIntake(ManagedProcess):
    def __init__(self, database_url: str, log_path: Path) -> None:
        super().__init__("bare-intake", log_path)
        self.port = free_port()
        self.database_url = database_url

    def start(self) -> None:
        command = [sys.executable, "-m", "uvicorn", "--factory", "bench.bare_intake:create_app"]
        self._spawn(
            [*command, "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"],
            env={**os.environ, "DATABASE_URL": self.database_url},
        )
        self.wait_until_answering(f"http://127.0.0.1:{self.port}/healthz", timeout=30)


PHONE_PLACEHOLDER = "13800000000"
# Each request's customer has a phone of their own, as at a real counter: one phone behind thousands of
# complaints would measure the repeat lookup of a single customer, not intake. Lua for a wrk script:
# `with_own_phone(body)` puts the next phone of the calling wrk thread in place of the placeholder.
PHONE_PER_REQUEST = f"""
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
local phones = 0
function with_own_phone(body)
  phones = phones + 1
  return (body:gsub("{PHONE_PLACEHOLDER}", string.format("13%d%08d", thread_number % 10, phones)))
end
"""


def with_a_phone_per_request(body: dict[str, Any]) -> str:
    """The body as JSON, its phone the placeholder `PHONE_PER_REQUEST` replaces."""
    return json.dumps({**body, "customer": {**body["customer"], "phone": PHONE_PLACEHOLDER}}, ensure_ascii=False)


def lua_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


# Lua for a wrk script: `request()` with headers of its own, `wrk.headers` and an Idempotency-Key of its own, as a
# front-line system retrying safely sends; the run's prefix keeps keys of an earlier run from being replays.
KEY_PER_REQUEST = """
local keys = 0
function with_own_key()
  keys = keys + 1
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Idempotency-Key"] = string.format("%s-%d-%d", run_prefix, thread_number, keys)
  return headers
end
"""


def wrk_posts_per_second(
    url: str, body: dict[str, Any], headers: dict[str, str], script: Path, *, idempotency_keys: bool = False
) -> float:
    """`wrk`'s rate of POSTs of `body`, each with a phone of its own, and with `idempotency_keys` a key of its
    own; every answer must be a 201."""
    request_headers = "with_own_key()" if idempotency_keys else "nil"
    lines = [
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
        *(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}" for name, value in headers.items()),
        f"local body = {lua_string(with_a_phone_per_request(body))}",
        PHONE_PER_REQUEST,
        f"local run_prefix = {lua_string(uuid.uuid4().hex)}",
        KEY_PER_REQUEST,
        f"function request() return wrk.format(nil, nil, {request_headers}, with_own_phone(body)) end",
    ]
    script.write_text("\n".join(lines) + "\n")
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "-s", str(script), url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw failed requests:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert match, output
    return float(match.group(1))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-") as data_dir:
        config = StackConfig.for_tests(Path(data_dir))
        config.durable = True
        stack = Stack(config)
        try:
            stack.start()
            complaints_url = stack.services["complaints"].url
            sequential, delays = asyncio.run(sequential_with_delays(complaints_url, stack.database_url))
            for name in CONSUMERS:
                stack.services[name].kill()  # a deliberate kill: the stack leaves it down
            bare = BareIntake(stack.database_url, Path(data_dir) / "bare-intake.log")
            bare.start()
            try:
                body = complaint_body(new_hall(complaints_url))
                script = Path(data_dir) / "post.lua"
                bare_rate = wrk_posts_per_second(f"http://127.0.0.1:{bare.port}/api/v1/complaints", body, {}, script)
                url = f"{complaints_url}/api/v1/complaints"
                rate = wrk_posts_per_second(url, body, admin_headers(), script)
                keyed_rate = wrk_posts_per_second(url, body, admin_headers(), script, idempotency_keys=True)
            finally:
                bare.stop()
        finally:
            stack.stop()
    median, p99 = statistics.median(delays), delays[int(len(delays) * 0.99) - 1]
    print(f"one sequential client, whole stack: {sequential:.0f} complaints/s ({SEQUENTIAL_COMPLAINTS} POSTs)")
    print(
        f"delay from commit to timeline: median {median * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,"
        f" max {delays[-1] * 1000:.0f} ms"
    )
    print(f"wrk, {CONNECTIONS} connections for {SECONDS} s each, durable PostgreSQL, no consumer running:")
    print(f"  bare FastAPI + asyncpg intake        {bare_rate:8.0f} POST/s")
    print(f"  complaints service                   {rate:8.0f} POST/s   ratio to bare {rate / bare_rate:.2f}")
    keyed_ratio = keyed_rate / bare_rate
    print(f"    each with an Idempotency-Key       {keyed_rate:8.0f} POST/s   ratio to bare {keyed_ratio:.2f}")


if __name__ == "__main__":
    main()
