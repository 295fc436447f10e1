"""The relay on the real broker and event store, through a broker that loses its data."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from devstack.broker import TansuBroker
from devstack.postgres import EmbeddedPostgres
from devstack.process import free_port
from shared.migrations import RELAY, migrate_schema
from shared.relay import OutgoingMessage, Relay, RelayPositions, relaying
from shared.streaming import partitions_of

TOPIC = "relayed.events.v1"


class ListOutbox:
    """Stored events, as the relay reads them; the event store itself is tested elsewhere."""

    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []

    def store(self, value: bytes) -> None:
        self.messages.append(OutgoingMessage(position=len(self.messages) + 1, key=b"key", value=value))

    async def read_after(self, position: int, limit: int) -> Sequence[OutgoingMessage]:
        return self.messages[position : position + limit]

    async def newest_position(self) -> int:
        return len(self.messages)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    process = TansuBroker(free_port(), tmp_path / "broker.log")
    process.start()
    yield process
    process.stop()


async def relayed_up_to(positions: RelayPositions, relay: Relay, position: int, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while await positions.get(relay.name) < position:
            await asyncio.sleep(0.05)


async def values_served(bootstrap_servers: str, wanted: bytes, timeout: float = 15) -> list[bytes]:
    """What the topic serves from its start, read until `wanted` is among it or `timeout` passes."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await reader.start()
    served: list[bytes] = []
    try:
        partitions = partitions_of(reader, TOPIC)
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        deadline = asyncio.get_running_loop().time() + timeout
        while wanted not in served and asyncio.get_running_loop().time() < deadline:
            batches = await reader.getmany(timeout_ms=200)
            served += [message.value for messages in batches.values() for message in messages if message.value]
    finally:
        with contextlib.suppress(asyncio.CancelledError):  # aiokafka 0.14, see shared.streaming
            await reader.stop()
    return served


async def test_what_it_publishes_to_a_broker_that_has_just_lost_its_data_is_served(
    postgres: EmbeddedPostgres, broker: TansuBroker, tmp_path: Path
) -> None:
    pool = await asyncpg.create_pool(postgres.url)
    await migrate_schema(postgres.url, "public", [RELAY])
    positions = RelayPositions(pool)
    outbox = ListOutbox()
    relay = Relay(
        name="fresh-broker",
        outbox=outbox,
        positions=positions,
        bootstrap_servers=broker.bootstrap_servers,
        topic=TOPIC,
        idle_poll_seconds=0.05,
    )
    try:
        # No store notifies this relay of commits (the channel is of none): it finds them by polling.
        async with relaying(relay, pool, postgres.url, store_name="relay_test"):
            outbox.store(b"before")
            await relayed_up_to(positions, relay, 1)
            broker.kill()
            fresh = TansuBroker(broker.port, tmp_path / "fresh-broker.log")
            await asyncio.to_thread(fresh.start)
            try:
                outbox.store(b"after")
                await relayed_up_to(positions, relay, 2)
                # The producer still knows the topic's partitions from before, so it writes at once,
                # before anything has made the fresh broker create the topic.
                served = await values_served(fresh.bootstrap_servers, b"after")
            finally:
                fresh.stop()
    finally:
        await pool.close()

    assert b"after" in served
    assert b"before" not in served, "the fresh broker should start empty"
