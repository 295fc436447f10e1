"""faust wiring for `IdempotentConsumer`: the agent only parses and delegates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from faust.contrib.asgi import faust_app_running

from shared.clock import Clock, system_clock
from shared.consumer import INBOX_DDL, Handler, IdempotentConsumer, ReceivedMessage, dead_letter_record
from shared.metrics import CONSUMER_LAG
from shared.topics import dead_letter_topic

logger = logging.getLogger(__name__)
EXIT_BROKER_RESET = 75  # EX_TEMPFAIL: start again


def create_faust_app(app_id: str, bootstrap_servers: str, data_dir: Path) -> faust.App:
    return faust.App(
        app_id,
        broker=f"kafka://{bootstrap_servers}",
        store="memory://",
        datadir=str(data_dir / f"faust-{app_id}"),
        web_enabled=False,
        # faust's defaults make joining a group take ~30 s (ARCHITECTURE.md).
        broker_rebalance_timeout=3,
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
    )


class FaustDeadLetterSink:
    def __init__(self, app: faust.App, consumer_name: str) -> None:
        self.consumer_name = consumer_name
        self.topic = app.topic(dead_letter_topic(consumer_name), key_serializer="raw", value_serializer="raw")

    async def publish(self, message: ReceivedMessage, reason: str) -> None:
        delivery = await self.topic.send(
            key=message.key,
            value=dead_letter_record(message, reason, self.consumer_name),
            headers={"reason": reason.encode()},
        )
        await delivery


def subscribe(app: faust.App, consumer: IdempotentConsumer, topic_name: str) -> None:
    topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")

    async def consume(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            await consumer.handle(
                ReceivedMessage(
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    key=message.key,
                    value=message.value,
                    headers=header_pairs(message.headers),
                )
            )

    app.agent(topic, name=f"{consumer.name}-{topic_name}")(consume)


def header_pairs(headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None) -> list[tuple[str, bytes]]:
    """faust hands headers over as a mapping or as pairs, depending on where the message came from."""
    if headers is None:
        return []
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


def partitions_of(reader: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]


async def committed_offsets(reader: AIOKafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """What the reader's group has committed on each partition (0 where nothing yet)."""
    return {partition: await reader.committed(partition) or 0 for partition in partitions}


class ConsumerLagMonitor:
    """Sets `consumer_lag_messages`: for each topic, the messages the group has not committed yet.

    Reads end offsets with ListOffsets, which the local broker under-reports by up to one batch
    (see `end_offsets`); a lag metric can live with that, and on Kafka it is exact.
    """

    def __init__(self, bootstrap_servers: str, consumer_name: str, group_id: str, topics: Sequence[str]) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.consumer_name = consumer_name
        self.group_id = group_id
        self.topics = topics

    async def run(self, interval_seconds: float = 5) -> None:
        while True:
            # In the group, to read its committed offsets; never subscribed, so it never joins it.
            reader = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap_servers, group_id=self.group_id, enable_auto_commit=False
            )
            try:
                await reader.start()
                while True:
                    # committed() waits as long as the coordinator is away: the gauge must not freeze meanwhile
                    await asyncio.wait_for(self.measure(reader), timeout=interval_seconds * 4)
                    await asyncio.sleep(interval_seconds)
            except (KafkaError, TimeoutError) as error:
                logger.warning("%s: consumer lag not measured: %r", self.consumer_name, error)
                CONSUMER_LAG.clear()  # no figure rather than a stale one
            finally:
                with contextlib.suppress(asyncio.CancelledError):  # aiokafka 0.14, see BrokerResetWatchdog
                    await reader.stop()
            await asyncio.sleep(interval_seconds)

    async def measure(self, reader: AIOKafkaConsumer) -> None:
        for topic in self.topics:
            partitions = partitions_of(reader, topic)
            ends = await reader.end_offsets(partitions)
            done = await committed_offsets(reader, partitions)
            CONSUMER_LAG.labels(self.consumer_name, topic).set(sum(max(ends[p] - done[p], 0) for p in partitions))


class BrokerResetWatchdog:
    """Ends the process when the broker has lost its data, so the supervisor starts it afresh.

    A partition whose end offset goes down means the broker was replaced (the local
    broker keeps topics in memory). faust then keeps committing offsets of the old
    broker, which the new one may accept although it has fewer messages: a consumer
    resuming from them would wait forever. So `on_reset` first moves the consumer to a
    new group (see `ConsumerEpochs`), which starts from the earliest offset; the inbox
    drops what was already applied.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        on_reset: Callable[[], Awaitable[None]],
        interval_seconds: float = 2.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.on_reset = on_reset
        self.interval_seconds = interval_seconds
        self.seen: dict[int, int] = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                ends = await asyncio.wait_for(self._end_offsets(), self.interval_seconds * 5)
            except (KafkaError, OSError, TimeoutError):
                continue  # the broker is away; judge it when it is back
            if any(ends.get(partition, 0) < seen for partition, seen in self.seen.items()):
                logger.error("broker lost %s's data (end offsets went down); exiting to restart", self.topic)
                await self.on_reset()
                logging.shutdown()
                os._exit(EXIT_BROKER_RESET)
            self.seen = ends

    async def _end_offsets(self) -> dict[int, int]:
        """A new reader each time: its start-up metadata is fresh, which a long-lived one's is not."""
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, group_id=None, request_timeout_ms=5000)
        await reader.start()
        try:
            partitions = reader.partitions_for_topic(self.topic)
            if not partitions:
                return {}  # no such topic (yet): a broker that had it has lost it
            ends = await reader.end_offsets([TopicPartition(self.topic, p) for p in partitions])
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            # A group-less reader stopped right after starting raises CancelledError from its
            # own committed-offsets task (aiokafka 0.14); that is not a cancellation of ours.
            with contextlib.suppress(asyncio.CancelledError):
                await reader.stop()


EPOCHS_DDL = "CREATE TABLE IF NOT EXISTS consumer_epochs (consumer text PRIMARY KEY, epoch integer NOT NULL)"


async def create_consumer_tables(pool: asyncpg.Pool) -> None:
    """The inbox that drops repeated events, and the consumer group epochs (see `ConsumerEpochs`)."""
    await pool.execute(INBOX_DDL)
    await pool.execute(EPOCHS_DDL)


class ConsumerEpochs:
    """Which consumer group a service uses: it moves to a new one after each broker reset,
    because the broker keeps the old group's offsets, which belong to the lost data."""

    def __init__(self, pool: asyncpg.Pool, consumer_name: str) -> None:
        self.pool = pool
        self.consumer_name = consumer_name

    async def group_id(self) -> str:
        epoch = await self.pool.fetchval("SELECT epoch FROM consumer_epochs WHERE consumer = $1", self.consumer_name)
        return f"{self.consumer_name}-epoch-{epoch}" if epoch else self.consumer_name

    async def next_epoch(self) -> None:
        await self.pool.execute(
            "INSERT INTO consumer_epochs VALUES ($1, 1)"
            " ON CONFLICT (consumer) DO UPDATE SET epoch = consumer_epochs.epoch + 1",
            self.consumer_name,
        )


@contextlib.asynccontextmanager
async def consuming(
    *,
    name: str,
    pool: asyncpg.Pool,
    handlers: Mapping[str, Handler],
    topics: Sequence[str],
    bootstrap_servers: str,
    data_dir: Path,
    clock: Clock = system_clock,
) -> AsyncIterator[str]:
    """Runs an idempotent consumer of `topics` for the duration of the block; gives its consumer group.

    Its watchdog watches the first topic: a broker that lost its data lost every topic's.
    """
    await create_consumer_tables(pool)
    epochs = ConsumerEpochs(pool, name)
    group_id = await epochs.group_id()
    streams = create_faust_app(group_id, bootstrap_servers, data_dir)
    consumer = IdempotentConsumer(
        name=name, pool=pool, handlers=handlers, dead_letters=FaustDeadLetterSink(streams, name), clock=clock
    )
    for topic in topics:
        subscribe(streams, consumer, topic)
    watchdog = asyncio.create_task(BrokerResetWatchdog(bootstrap_servers, topics[0], epochs.next_epoch).run())
    lag = asyncio.create_task(ConsumerLagMonitor(bootstrap_servers, name, group_id, topics).run())
    try:
        async with faust_app_running(streams, stop_timeout=10):
            yield group_id
    finally:
        watchdog.cancel()
        lag.cancel()
        await asyncio.gather(watchdog, lag, return_exceptions=True)


async def topic_partitions(bootstrap_servers: str, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the topics that exist."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
    await reader.start()
    try:
        return [partition for topic in topics for partition in partitions_of(reader, topic)]
    finally:
        with contextlib.suppress(asyncio.CancelledError):  # aiokafka 0.14, see BrokerResetWatchdog
            await reader.stop()


async def end_offsets(
    bootstrap_servers: str, partitions: list[TopicPartition], timeout_seconds: float = 10
) -> dict[TopicPartition, int]:
    """The offset after each partition's last message.

    The local broker (Tansu) answers ListOffsets with the start of the last batch rather than
    its end, so this also fetches from there: a fetch's high watermark is right on both brokers.
    """
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        reported = await reader.end_offsets(partitions)
        reader.assign(partitions)
        for partition, offset in reported.items():
            reader.seek(partition, offset)
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        while any(reader.highwater(p) is None for p in partitions) and asyncio.get_running_loop().time() < deadline:
            await reader.getmany(timeout_ms=200)
        return {p: max(reported[p], reader.highwater(p) or 0) for p in partitions}
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await reader.stop()


async def wait_until_caught_up(
    bootstrap_servers: str, group_id: str, topic: str, timeout_seconds: float = 60, poll_seconds: float = 0.5
) -> bool:
    """Waits until the group has committed every message that was on `topic` when called; False at the timeout.

    Work that must not act on stale state (e.g. firing deadlines after a restart, while the
    events that stopped those clocks are still queued) waits for this first.
    """
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group_id, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = partitions_of(reader, topic)
        ends = await end_offsets(bootstrap_servers, partitions)
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        while asyncio.get_running_loop().time() < deadline:
            committed = await committed_offsets(reader, partitions)
            if all(committed[partition] >= ends[partition] for partition in partitions):
                return True
            await asyncio.sleep(poll_seconds)
        return False
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await reader.stop()
