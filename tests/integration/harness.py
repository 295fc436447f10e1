"""Drives a running stack the way a front-line system and an operator would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from devstack.stack import Stack, StackConfig
from shared.auth import AuthSettings, Role, hash_api_key, issue_staff_token
from shared.clock import CHINA_TIME, MovableClock
from shared.organisation import OrgUnit
from shared.streaming import ConsumerEpochs, wait_until_caught_up
from shared.topics import COMPLAINTS_EVENTS, ESCALATION_EVENTS, SCORING_EVENTS, dead_letter_topic

# Every test stack's clock starts here, so no test depends on today's date: a working Monday, 09:00 China
# time, in a month under the first SLA and scoring policies (2026-01) and a year the calendar knows.
STACK_STARTS_AT = datetime(2026, 11, 16, 9, 0, tzinfo=CHINA_TIME)
FRONT_LINE_KEY = "test-front-line-key-for-SZ-KEY-HALL"
FRONT_LINE_HALL = ("广东", "深圳", "SZ-KEY-HALL")
# The event-sourced services; each one's schema, named after it, holds its event store (`<name>.<name>_events`)
# and its relay position.
EVENT_SOURCED = ("complaints", "escalation", "scoring")
# What each consumer service reads (its composition root subscribes to the same topics).
CONSUMED_TOPICS = {
    "escalation": (COMPLAINTS_EVENTS,),
    "scoring": (COMPLAINTS_EVENTS, ESCALATION_EVENTS),
    "projections": (COMPLAINTS_EVENTS, ESCALATION_EVENTS, SCORING_EVENTS),
}


def staff_token(subject: str, unit: OrgUnit, *roles: Role) -> str:
    return issue_staff_token(AuthSettings(environment="development"), subject, unit, roles, timedelta(hours=1))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def write_api_keys(path: Path) -> Path:
    """One front-line key, bound to the hall FRONT_LINE_HALL."""
    path.write_text(
        json.dumps(
            {
                hash_api_key(FRONT_LINE_KEY): {
                    "name": "counter-system-sz",
                    "unit": str(OrgUnit(FRONT_LINE_HALL)),
                    "roles": ["front_line"],
                }
            }
        )
    )
    return path


def complaint_body(hall_id: str, description: str = "charged twice for one plan") -> dict[str, Any]:
    return {
        "hall_id": hall_id,
        "channel": "hotline_10000",
        "category": "billing",
        "priority": "normal",
        "customer": {"name": "张三", "phone": "13812345678"},
        "description": description,
    }


class StackClient:
    def __init__(self, stack: Stack, http: httpx.AsyncClient, database: asyncpg.Pool) -> None:
        self.stack = stack
        self.http = http
        self.database = database

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, stack: Stack) -> AsyncIterator[StackClient]:
        database = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=4)
        assert database is not None
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        headers = bearer(staff_token("test-admin", OrgUnit(), Role.admin))
        async with httpx.AsyncClient(timeout=10, limits=limits, headers=headers) as http:
            try:
                yield cls(stack, http, database)
            finally:
                await database.close()

    @contextlib.asynccontextmanager
    async def acting_as(self, headers: dict[str, str]) -> AsyncIterator[StackClient]:
        """The same stack, called with these credentials instead of the test admin's."""
        async with httpx.AsyncClient(timeout=10, headers=headers) as http:
            yield StackClient(self.stack, http, self.database)

    @property
    def complaints_url(self) -> str:
        return self.stack.services["complaints"].url

    @property
    def projections_url(self) -> str:
        return self.stack.services["projections"].url

    @property
    def escalation_url(self) -> str:
        return self.stack.services["escalation"].url

    @property
    def scoring_url(self) -> str:
        return self.stack.services["scoring"].url

    def move_clock_to(self, instant: datetime) -> None:
        """Every service of the stack reads the time from this file (CLOCK_OFFSET_FILE)."""
        MovableClock.move_to(self.clock_offset_file, instant)

    def now(self) -> datetime:
        """The time as the stack's services read it: tests take instants from here, never the wall clock."""
        return MovableClock(self.clock_offset_file)()

    @property
    def clock_offset_file(self) -> Path:
        return Path(self.stack.config.extra_env["CLOCK_OFFSET_FILE"])

    async def consumer_group(self, consumer: str) -> str:
        """The consumer group a consumer service uses now (it moves to a new one after a broker reset)."""
        schema = next(name for name in CONSUMED_TOPICS if name == consumer)  # a known name, never input
        epoch = await self.database.fetchval(
            f"SELECT epoch FROM {schema}.consumer_epochs WHERE consumer = $1",  # noqa: S608
            consumer,
        )
        return ConsumerEpochs(self.database, consumer).group_id(epoch or 0)

    async def wait_until_relayed(self, service: str, timeout: float = 60) -> None:
        """Until an event-sourced service's relay has published every event it had stored when called."""
        schema = next(name for name in EVENT_SOURCED if name == service)  # a known name, never input
        stored = await self.database.fetchval(f"SELECT max(notification_id) FROM {schema}.{schema}_events")  # noqa: S608
        relayed = await eventually(lambda: self._relay_position_reached(schema, stored or 0), timeout=timeout)
        assert relayed, f"{service}'s relay did not publish its stored events within {timeout} s"

    async def _relay_position_reached(self, schema: str, position: int) -> bool:
        published = await self.database.fetchval(f"SELECT position FROM {schema}.relay_positions")  # noqa: S608
        return (published or 0) >= position

    async def wait_until_consumed(
        self, *consumers: str, only: Sequence[str] | None = None, timeout: float = 90
    ) -> None:
        """Until each consumer service has committed every message that was on its topics (or those of
        them named in `only`) when called.

        Consumers run in stream order, so what they derive from those messages and publish in turn
        (e.g. scoring's score changes) is waited for by naming the downstream consumer after them.
        """
        for consumer in consumers:
            group = await self.consumer_group(consumer)
            for topic in only or CONSUMED_TOPICS[consumer]:
                caught_up = await wait_until_caught_up(self.stack.bootstrap_servers, group, topic, timeout)
                assert caught_up, f"{consumer} did not consume {topic} within {timeout} s"

    async def wait_until_scored(self) -> None:
        """Until every event stored so far, and the breaches and verdicts escalation derives from it, has
        been scored, its score changes are in the projections and the grades read them."""
        await self.wait_until_relayed("complaints")
        await self.wait_until_consumed("escalation")
        await self.wait_until_relayed("escalation")
        await self.wait_until_consumed("scoring")
        await self.wait_until_relayed("scoring")
        await self.wait_until_consumed("projections")
        await self.wait_until_graded()

    async def wait_until_graded(self, timeout: float = 60) -> None:
        """Until the scoring service's grades read every score change it had stored when called."""
        stored = await self.database.fetchval("SELECT max(notification_id) FROM scoring.scoring_events")

        async def copied() -> bool:
            position = await self.database.fetchval("SELECT position FROM scoring.score_changes_copied")
            return (position or 0) >= (stored or 0)

        assert await eventually(copied, timeout=timeout), f"the grades did not read every score change in {timeout} s"

    async def clocks(self, complaint_id: str, kind: str = "complaints", timeout: float = 30) -> dict[str, Any]:
        """A subject's SLA clocks, once the escalation service has them."""
        deadline = time.monotonic() + timeout
        while True:
            response = await self.http.get(f"{self.escalation_url}/api/v1/{kind}/{complaint_id}/clocks")
            if response.status_code == 200 or time.monotonic() > deadline:
                assert response.status_code == 200, response.text
                body: dict[str, Any] = response.json()
                return body
            await asyncio.sleep(0.2)

    async def register_hall(
        self,
        level: int = 1,
        ownership: str = "self_operated",
        province: str = "广东",
        city: str = "深圳",
        hall_id: str | None = None,
    ) -> str:
        hall_id = hall_id or f"HALL-{uuid.uuid4().hex[:10]}"
        response = await self.http.post(
            f"{self.complaints_url}/api/v1/halls",
            json={
                "hall_id": hall_id,
                "name": "福田营业厅",
                "province": province,
                "city": city,
                "level": level,
                "ownership": ownership,
            },
        )
        assert response.status_code == 201, response.text
        return hall_id

    async def post_complaint(
        self, body: dict[str, Any], idempotency_key: str | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        headers = {**(headers or {}), **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
        return await self.http.post(f"{self.complaints_url}/api/v1/complaints", json=body, headers=headers)

    async def step(
        self,
        complaint_id: str,
        action: str,
        body: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {**(headers or {}), **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
        return await self.http.post(
            f"{self.complaints_url}/api/v1/complaints/{complaint_id}/{action}",
            json={"reason": f"{action} for the test", **(body or {})},
            headers=headers,
        )

    async def wait_for_timeline(
        self, aggregate_id: str, length: int, timeout: float = 30, kind: str = "complaints"
    ) -> list[dict[str, Any]]:
        """A complaint's (or order's) timeline once it has `length` events, or what it has at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            response = await self.http.get(f"{self.projections_url}/api/v1/{kind}/{aggregate_id}/timeline")
            events: list[dict[str, Any]] = response.json().get("events", []) if response.status_code == 200 else []
            if len(events) >= length or time.monotonic() > deadline:
                return events
            await asyncio.sleep(0.2)

    async def projected_counts(self, complaint_ids: set[str]) -> dict[str, int]:
        """How many timeline rows the projection holds for each complaint's registration."""
        rows = await self.database.fetch(
            """
            SELECT aggregate_id::text AS id, count(*) AS n FROM projections.timelines
            WHERE aggregate_id = ANY($1::uuid[]) AND event_type = 'ComplaintRegistered'
            GROUP BY aggregate_id
            """,
            list(complaint_ids),
        )
        return {row["id"]: row["n"] for row in rows}

    async def wait_until_projected(self, complaint_ids: set[str], timeout: float = 60) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while True:
            counts = await self.projected_counts(complaint_ids)
            if set(counts) >= complaint_ids or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.25)

    def republish(self, from_position: int = 0) -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "services.complaints",
                "republish",
                "--from-position",
                str(from_position),
                "--no-follow",
            ],
            env=self.stack.service_env(),
            check=True,
            capture_output=True,
        )

    async def dead_letters(self, consumer: str = "projections", settle_seconds: float = 3) -> list[dict[str, Any]]:
        """Every record on the consumer's dead-letter topic, read from the broker."""
        return await self.records_on(dead_letter_topic(consumer), settle_seconds)

    async def records_on(self, topic: str, settle_seconds: float = 3) -> list[dict[str, Any]]:
        """Every record on the topic, read from the broker."""
        reader = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.stack.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await reader.start()
        records: list[dict[str, Any]] = []
        try:
            batches = await reader.getmany(timeout_ms=int(settle_seconds * 1000))
            while batches:
                records += [json.loads(message.value) for batch in batches.values() for message in batch]
                batches = await reader.getmany(timeout_ms=1000)
        finally:
            await reader.stop()
        return records


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.25)
    return False


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """For a thread of a test: returns once `condition` holds, fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def running_stack(
    tmp_path_factory: pytest.TempPathFactory,
    extra_env: dict[str, str],
    prometheus_interval: str | None = None,
    notifications: bool = False,
    database_url: str | None = None,
) -> Iterator[Stack]:
    """A whole stack of its own, on free ports: `make run` may be up beside it. `notifications`: with the
    SMTP server and messaging gateway that customers' notifications go to. `database_url`: on that database
    rather than a new one."""
    config = StackConfig.for_tests(tmp_path_factory.mktemp("stack"))
    config.external_database_url = database_url
    config.prometheus_interval = prometheus_interval
    config.outbound = notifications
    config.extra_env["API_KEYS_FILE"] = str(write_api_keys(config.data_dir / "api-keys.json"))
    clock_offset_file = config.data_dir / "clock-offset"
    MovableClock.move_to(clock_offset_file, STACK_STARTS_AT)
    config.extra_env["CLOCK_OFFSET_FILE"] = str(clock_offset_file)
    config.extra_env |= extra_env
    stack = Stack(config)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
