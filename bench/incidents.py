"""Bulk actions on a mass incident: acknowledging 1,000 children in one request, against one by one.

The complaints service runs with its broker and relay on a durable embedded PostgreSQL (no consumer
service). 2,000 complaints are registered; 1,000 are linked to one incident in one batch (timed), and
one bulk `acknowledge` takes the first response of all of them (timed: the figure issue 15 asks to stay
under 10 s).

Baseline, in the same run against the same service: other complaints acknowledged a request each, as a
handler without incidents would, driven by `wrk` (16 connections, each complaint once) for 5 s; the time
1,000 of them take at that rate. The ratio is the bulk request's time over the baseline's.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.intake import admin_headers, complaint_body, new_hall
from devstack.stack import Stack, StackConfig

CHILDREN = 1000
CONNECTIONS = 16
BASELINE_SECONDS = 5
BASELINE_POOL = 4000  # more than `wrk` acknowledges in `BASELINE_SECONDS`
CONSUMERS = ["escalation", "scoring", "projections"]

# Each wrk thread acknowledges its share of the paths, each once, for the run's duration; the pool is larger
# than a run can use up, and a thread that used up its share says so.
ONE_EACH_SCRIPT = """
local paths = {%(paths)s}
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
function init(args)
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "%(authorization)s"
  mine, next_index = {}, 1
  for i = id, #paths, %(threads)d do table.insert(mine, paths[i]) end
end
function request()
  local path = mine[next_index]
  next_index = next_index + 1
  if path == nil then
    print("used up its share of complaints")
    path = mine[1]
  end
  return wrk.format("POST", path, nil, '{"reason":"told the customer of the outage"}')
end
"""


async def register(complaints_url: str, count: int) -> list[str]:
    hall_id = new_hall(complaints_url)
    gate = asyncio.Semaphore(CONNECTIONS)
    async with httpx.AsyncClient(timeout=60, headers=admin_headers()) as http:

        async def one() -> str:
            async with gate:
                response = await http.post(f"{complaints_url}/api/v1/complaints", json=complaint_body(hall_id))
                response.raise_for_status()
                return str(response.json()["id"])

        return list(await asyncio.gather(*(one() for _ in range(count))))


async def bulk(complaints_url: str, children: list[str]) -> tuple[float, float]:
    """Seconds to link the children in one batch, and to acknowledge them all in one bulk action."""
    async with httpx.AsyncClient(timeout=120, headers=admin_headers()) as http:
        hall = (await http.get(f"{complaints_url}/api/v1/complaints/{children[0]}")).json()["owner_unit"]
        incident = await http.post(
            f"{complaints_url}/api/v1/incidents",
            json={
                "cause": "Fibre cut",
                "area": hall.rsplit("/", 1)[0],
                "category": "billing",
                "window_start": "2026-01-01T00:00:00+08:00",
                "window_end": "2026-01-02T00:00:00+08:00",
            },
        )
        incident.raise_for_status()
        base = f"{complaints_url}/api/v1/incidents/{incident.json()['id']}"
        started = time.perf_counter()
        linked = await http.post(f"{base}/children", json={"reason": "same outage", "add": children})
        link_seconds = time.perf_counter() - started
        linked.raise_for_status()
        assert linked.json()["done"] == len(children), linked.text
        started = time.perf_counter()
        acknowledged = await http.post(f"{base}/acknowledge", json={"reason": "told every customer of the outage"})
        acknowledge_seconds = time.perf_counter() - started
        acknowledged.raise_for_status()
        assert acknowledged.json()["done"] == len(children), acknowledged.text
    return link_seconds, acknowledge_seconds


def one_by_one(complaints_url: str, complaints: list[str], script: Path) -> float:
    """Acknowledgements per second, with a request each, under `wrk`."""
    paths = ", ".join(json.dumps(f"/api/v1/complaints/{complaint}/acknowledge") for complaint in complaints)
    authorization = admin_headers()["Authorization"]
    script.write_text(ONE_EACH_SCRIPT % {"paths": paths, "authorization": authorization, "threads": 2})
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{BASELINE_SECONDS}s", "-s", str(script), complaints_url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    if "used up" in output or "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw failed requests, or ran out of complaints:\n{output}")
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
            for name in CONSUMERS:
                stack.services[name].kill()  # a deliberate kill: the stack leaves it down
            complaints_url = stack.services["complaints"].url
            children = asyncio.run(register(complaints_url, CHILDREN))
            alone = asyncio.run(register(complaints_url, BASELINE_POOL))
            link_seconds, bulk_seconds = asyncio.run(bulk(complaints_url, children))
            rate = one_by_one(complaints_url, alone, Path(data_dir) / "acknowledge.lua")
        finally:
            stack.stop()
    one_each = CHILDREN / rate
    print(f"mass incident, {CHILDREN} children, durable PostgreSQL, no consumer running:")
    print(f"  link all in one batch                {link_seconds:6.2f} s")
    print(f"  bulk acknowledge, one request        {bulk_seconds:6.2f} s   (issue 15: under 10 s)")
    print(
        f"  a request each ({rate:.0f}/s under wrk, {CONNECTIONS} connections) {one_each:6.2f} s"
        f"   ratio bulk / a request each {bulk_seconds / one_each:.2f}"
    )


if __name__ == "__main__":
    main()
