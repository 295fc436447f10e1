"""The whole stack at fixed offered rates: what it sustains, how stale the timeline is, what each part costs.

Every service runs, against a durable embedded PostgreSQL and the local broker, on this machine's
cores. `wrk` (C) posts complaints over 20 halls at a fixed offered rate for `STEP_SECONDS`, in steps
of `RATES`. After each step the bench times how long every relay and consumer takes to drain (the
chain escalation → scoring → projections, as the integration tests wait for it). A rate is sustained
when wrk got it, every answer was a 201 and everything drained within `DRAIN_LIMIT_SECONDS`.

Per step it prints:
- each consumer's CPU seconds per message it consumed (its process's CPU time over the step and
  the drain, over the messages its consumer group committed);
- at `DELAY_RATE`, the delay from each complaint's commit to its projection in the timeline;
- after the run, each service's resident memory.

Baseline, in the same run against the same PostgreSQL: the bare FastAPI + asyncpg intake service of
`bench/intake.py` under unpaced `wrk`; the sustained rate is printed as a ratio of it.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench.intake import (
    PHONE_PER_REQUEST,
    BareIntake,
    admin_headers,
    complaint_body,
    lua_string,
    with_a_phone_per_request,
    wrk_posts_per_second,
)
from devstack.stack import Stack, StackConfig
from shared.streaming import committed_offsets, partitions_of
from tests.integration.harness import CONSUMED_TOPICS, StackClient

RATES = [int(rate) for rate in os.environ.get("BENCH_RATES", "100,200,300,400,500,600").split(",")]
STEP_SECONDS = int(os.environ.get("BENCH_STEP_SECONDS", 20))
DRAIN_LIMIT_SECONDS = 10
DELAY_RATE = 200
HALLS_PER_STEP = 20
CONNECTIONS = 64
WRK_THREADS = 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Paces each wrk thread to one request per `interval` ms: wrk calls `delay()` before every request of
# the thread's connections, and each call takes the next slot of the thread's schedule.
FIXED_RATE_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *now);
]]
local now = ffi.new("bench_timespec")
local function monotonic_ms()
  ffi.C.clock_gettime(1, now)
  return tonumber(now.tv_sec) * 1000 + tonumber(now.tv_nsec) / 1e6
end
local interval = {interval}
local bodies = {bodies}
local next_slot = nil
local sent = 0
{phone_per_request}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{headers}
function delay()
  local at = monotonic_ms()
  next_slot = next_slot or at
  local wait = next_slot - at
  next_slot = next_slot + interval
  return math.max(0, wait)
end
function request()
  sent = sent + 1
  return wrk.format(nil, nil, nil, with_own_phone(bodies[sent % #bodies + 1]))
end
"""


@dataclass
class Step:
    offered: int
    achieved: float
    failed: bool
    drain_seconds: float
    cpu_per_message: dict[str, float]

    @property
    def sustained(self) -> bool:
        return not self.failed and self.achieved >= 0.95 * self.offered and self.drain_seconds <= DRAIN_LIMIT_SECONDS


def fixed_rate_script(rate: int, hall_ids: list[str]) -> str:
    bodies = [with_a_phone_per_request(complaint_body(hall_id)) for hall_id in hall_ids]
    headers = "\n".join(
        f"wrk.headers[{lua_string(name)}] = {lua_string(value)}" for name, value in admin_headers().items()
    )
    return (
        FIXED_RATE_SCRIPT.replace("{interval}", repr(1000 * WRK_THREADS / rate))
        .replace("{bodies}", "{" + ", ".join(lua_string(body) for body in bodies) + "}")
        .replace("{headers}", headers)
        .replace("{phone_per_request}", PHONE_PER_REQUEST)
    )


def post_at_fixed_rate(url: str, rate: int, hall_ids: list[str], script: Path) -> tuple[float, bool]:
    """wrk's achieved rate, and whether any request failed."""
    script.write_text(fixed_rate_script(rate, hall_ids))
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{STEP_SECONDS}s", "-s", str(script), url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert match, output
    return float(match.group(1)), "Non-2xx" in output or "Socket errors" in output


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def resident_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match, status
    return int(match.group(1)) / 1024


async def messages_committed(client: StackClient, consumer: str) -> int:
    """Messages the consumer's group has committed, over all partitions of the topics it reads."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=client.stack.bootstrap_servers,
        group_id=await client.consumer_group(consumer),
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        partitions = [partition for topic in CONSUMED_TOPICS[consumer] for partition in partitions_of(reader, topic)]
        return sum((await committed_offsets(reader, partitions)).values())
    finally:
        await reader.stop()


async def register_halls(client: StackClient, count: int) -> list[str]:
    return [await client.register_hall(hall_id=f"BENCH-{uuid.uuid4().hex[:8]}") for _ in range(count)]


async def timeline_delays(client: StackClient, hall_ids: list[str]) -> list[float]:
    """Seconds from each complaint's commit to the projection's applying it, for these halls."""
    rows = await client.database.fetch(
        """
        SELECT extract(epoch FROM i.processed_at - t.occurred_at) AS delay
        FROM projections.timelines t
        JOIN projections.consumer_inbox i ON i.event_id = t.event_id
        WHERE t.event_type = 'ComplaintRegistered' AND t.details->>'hall_id' = ANY($1::text[])
        """,
        hall_ids,
    )
    return sorted(float(row["delay"]) for row in rows)


async def run_step(client: StackClient, rate: int, script: Path) -> tuple[Step, list[float]]:
    hall_ids = await register_halls(client, HALLS_PER_STEP)
    await client.wait_until_scored()
    consumers = list(CONSUMED_TOPICS)
    pids = {name: client.stack.services[name].pid for name in consumers}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
    messages_before = {name: await messages_committed(client, name) for name in consumers}
    url = f"{client.complaints_url}/api/v1/complaints"
    achieved, failed = await asyncio.to_thread(post_at_fixed_rate, url, rate, hall_ids, script)
    stopped = time.perf_counter()
    try:
        await client.wait_until_scored()
        drain_seconds = time.perf_counter() - stopped
    except AssertionError:  # a part did not drain within the harness's timeouts
        drain_seconds = float("inf")
    cpu_per_message = {}
    for name, pid in pids.items():
        assert pid is not None, f"{name} is not running"
        consumed = await messages_committed(client, name) - messages_before[name]
        cpu_per_message[name] = (cpu_seconds(pid) - cpu_before[name]) / max(consumed, 1)
    delays = await timeline_delays(client, hall_ids) if rate == DELAY_RATE else []
    return Step(rate, achieved, failed, drain_seconds, cpu_per_message), delays


async def run_steps(stack: Stack, script: Path) -> tuple[list[Step], list[float], dict[str, float]]:
    steps: list[Step] = []
    delays: list[float] = []
    async with StackClient.connect(stack) as client:
        for rate in RATES:
            step, step_delays = await run_step(client, rate, script)
            steps.append(step)
            delays = delays or step_delays
            print(
                f"  offered {rate:4d}/s: achieved {step.achieved:6.0f}/s, drained in {step.drain_seconds:5.1f} s"
                f"{', failed requests' if step.failed else ''}"
                f"{'' if step.sustained else '  (not sustained)'}",
                flush=True,
            )
            if not step.sustained and rate > DELAY_RATE:
                break
    memory = {name: resident_mib(service.pid) for name, service in stack.services.items() if service.pid}
    return steps, delays, memory


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as data_dir:
        config = StackConfig.for_tests(Path(data_dir))
        config.durable = True
        stack = Stack(config)
        try:
            stack.start()
            bare = BareIntake(stack.database_url, Path(data_dir) / "bare-intake.log")
            bare.start()
            try:
                body = complaint_body("BARE")
                bare_rate = wrk_posts_per_second(
                    f"http://127.0.0.1:{bare.port}/api/v1/complaints", body, {}, Path(data_dir) / "bare.lua"
                )
            finally:
                bare.stop()
            print(f"whole stack, {os.cpu_count()} cores, wrk at fixed offered rates for {STEP_SECONDS} s each:")
            steps, delays, memory = asyncio.run(run_steps(stack, Path(data_dir) / "fixed-rate.lua"))
        finally:
            stack.stop()
    sustained = max((step.offered for step in steps if step.sustained), default=0)
    print(
        f"highest rate sustained (all lags drained within {DRAIN_LIMIT_SECONDS} s): {sustained}/s,"
        f" ratio to the bare intake service ({bare_rate:.0f} POST/s unpaced) {sustained / bare_rate:.2f}"
    )
    if delays:
        median, p99 = statistics.median(delays), delays[max(int(len(delays) * 0.99) - 1, 0)]
        print(
            f"commit → timeline at {DELAY_RATE}/s: median {median * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
            f" ({len(delays)} complaints)"
        )
    print("CPU time per consumed message (ms), by offered rate:")
    for step in steps:
        costs = ", ".join(f"{name} {seconds * 1000:.2f}" for name, seconds in step.cpu_per_message.items())
        print(f"  {step.offered:4d}/s: {costs}")
    print("resident memory after the run: " + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in memory.items()))


if __name__ == "__main__":
    main()
