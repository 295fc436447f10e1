"""faust wiring for `IdempotentConsumer`: the agent only parses and delegates."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from shared.clock import Clock, system_clock
from shared.consumer import Handling, IdempotentConsumer, ReceivedMessage, dead_letter_record
from shared.kafka_auth import client_options, faust_credentials
from shared.metrics import CONSUMER_LAG
from shared.tasks import essential_task
from shared.topic_ids import topic_ids
from shared.topics import dead_letter_topic

if TYPE_CHECKING:
    import faust

logger = logging.getLogger(__name__)
EXIT_BROKER_RESET = 75  # EX_TEMPFAIL: start again
# A batch costs one transaction and, in the event-sourced consumers, one save: per message, those
# were most of a consumer's CPU. A message waits at most BATCH_WAIT_SECONDS for its batch to fill.
BATCH_SIZE = 200
BATCH_WAIT_SECONDS = 0.02


def create_faust_app(app_id: str, bootstrap_servers: str, data_dir: Path, fetch_max_wait_ms: int) -> faust.App:
    import faust  # imported when first used: see `_consume`

    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap_servers}",
        broker_credentials=faust_credentials(),
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
    app.transport = _transport_waiting_at_most(app, fetch_max_wait_ms)
    return app


def _transport_waiting_at_most(app: faust.App, fetch_max_wait_ms: int) -> Any:
    """faust's Kafka transport, but with a fetch wait of our choosing: faust fixes it at 1.5 s."""
    from faust.transport.drivers import aiokafka as driver

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read when the consumer starts fetching
            return consumer

    class WaitingConsumer(driver.Consumer):
        def _new_consumer_thread(self) -> ConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(driver.Transport):
        Consumer = WaitingConsumer

    return Transport(app.conf.broker_consumer, app)


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
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_SECONDS):
            await consumer.handle([received(event.message) for event in events])

    app.agent(topic, name=f"{consumer.name}-{topic_name}")(consume)


def received(message: Any) -> ReceivedMessage:
    return ReceivedMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=header_pairs(message.headers),
    )


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
                bootstrap_servers=self.bootstrap_servers,
                group_id=self.group_id,
                enable_auto_commit=False,
                **client_options(),
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
                with contextlib.suppress(asyncio.CancelledError):  # aiokafka 0.14, see topic_partitions
                    await reader.stop()
            await asyncio.sleep(interval_seconds)

    async def measure(self, reader: AIOKafkaConsumer) -> None:
        for topic in self.topics:
            partitions = partitions_of(reader, topic)
            ends = await reader.end_offsets(partitions)
            done = await committed_offsets(reader, partitions)
            CONSUMER_LAG.labels(self.consumer_name, topic).set(sum(max(ends[p] - done[p], 0) for p in partitions))


class BrokerResetWatchdog:
    """Ends the process when the broker no longer holds the data its consumer group's offsets are about.

    That happens when the broker lost its data (the local broker keeps topics in memory) or a topic
    was created again. The consumer's group then has no offsets on the new data, or offsets that faust
    committed from its memory of the old data; and faust skips every message at an offset it has
    already read. So `ConsumerEpochs.settle` moves the consumer to a new group, and the process exits
    so that its supervisor starts it afresh: the new group starts from the earliest offset, and the
    inbox drops what was already applied. Another replica that moved the group ends this one too.

    It compares topic ids, not offsets: a new topic may already hold more messages than the old one
    did when last looked at (the relay's backlog, a republish), and then no offset goes down.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        epochs: ConsumerEpochs,
        epoch: int,
        interval_seconds: float = 2.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.epochs = epochs
        self.epoch = epoch
        self.interval_seconds = interval_seconds

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                ids = await asyncio.wait_for(topic_ids(self.bootstrap_servers, self.topics), self.interval_seconds * 5)
                epoch = await self.epochs.settle(self.epoch, ids)
            except (KafkaError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                continue  # the broker or the database is away; judge once both are back
            if epoch != self.epoch:
                logger.error(
                    "%s: the broker's topics are not those of its group's offsets (ids %s); exiting to restart"
                    " in consumer group epoch %d",
                    self.epochs.consumer_name,
                    {topic: str(topic_id) for topic, topic_id in ids.items()},
                    epoch,
                )
                logging.shutdown()
                os._exit(EXIT_BROKER_RESET)


class ConsumerEpochs:
    """Which consumer group a service uses, and which topics (by id) that group's offsets belong to.

    It moves to a new group whenever a topic's id changes (see `BrokerResetWatchdog`): the broker
    may keep the old group's offsets, which belong to data that is gone.
    """

    def __init__(self, pool: asyncpg.Pool, consumer_name: str) -> None:
        self.pool = pool
        self.consumer_name = consumer_name

    def group_id(self, epoch: int) -> str:
        return f"{self.consumer_name}-epoch-{epoch}" if epoch else self.consumer_name

    async def current(self) -> int:
        epoch = await self.pool.fetchval("SELECT epoch FROM consumer_epochs WHERE consumer = $1", self.consumer_name)
        return int(epoch or 0)

    async def settle(self, epoch: int, ids: Mapping[str, uuid.UUID]) -> int:
        """The epoch whose group's offsets belong to the topics `ids` names; `epoch` if it still does.

        A topic seen for the first time is recorded. One whose id differs from the recorded one, or a
        recorded topic now missing, moves every replica to the next epoch, once (the row is locked).
        """
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO consumer_epochs VALUES ($1, 0) ON CONFLICT DO NOTHING", self.consumer_name
            )
            current = await connection.fetchval(
                "SELECT epoch FROM consumer_epochs WHERE consumer = $1 FOR UPDATE", self.consumer_name
            )
            if current != epoch:
                return int(current)  # another replica moved on already
            recorded = {
                row["topic"]: row["topic_id"]
                for row in await connection.fetch(
                    "SELECT topic, topic_id FROM consumer_topic_ids WHERE consumer = $1", self.consumer_name
                )
            }
            if any(ids.get(topic) != topic_id for topic, topic_id in recorded.items()):
                current += 1
                await connection.execute(
                    "UPDATE consumer_epochs SET epoch = $2 WHERE consumer = $1", self.consumer_name, current
                )
                await connection.execute("DELETE FROM consumer_topic_ids WHERE consumer = $1", self.consumer_name)
            await connection.executemany(
                "INSERT INTO consumer_topic_ids VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                [(self.consumer_name, topic, topic_id) for topic, topic_id in ids.items()],
            )
            return int(current)


class ConsumerStatus:
    """What `/readyz` says about a consumer that joins its group in the background (see `consuming`)."""

    def __init__(self) -> None:
        self.group_id: str | None = None
        self.streams: faust.App | None = None

    @property
    def live(self) -> bool:
        """It has joined its group, holds partitions and runs (it has not crashed or begun stopping)."""
        streams = self.streams
        if streams is None or not streams.started or streams.crashed or streams.should_stop or streams.rebalancing:
            return False
        from faust.exceptions import ConsumerNotStarted  # faust is imported by now: `streams` is its app

        try:
            return bool(streams.consumer.assignment())
        except ConsumerNotStarted:  # the app has started, its consumer thread not yet
            return False

    async def joined(self, poll_seconds: float = 0.2) -> str:
        """Waits until the consumer is live; gives its consumer group."""
        while not self.live:  # noqa: ASYNC110 (`live` reads faust's state, which sets no event for it)
            await asyncio.sleep(poll_seconds)
        assert self.group_id is not None
        return self.group_id


@contextlib.asynccontextmanager
async def consuming(
    *,
    name: str,
    pool: asyncpg.Pool,
    handling: Handling,
    topics: Sequence[str],
    bootstrap_servers: str,
    fetch_max_wait_ms: int,
    data_dir: Path,
    clock: Clock = system_clock,
    status: ConsumerStatus | None = None,
    watch_broker_resets: bool = False,
) -> AsyncIterator[ConsumerStatus]:
    """Runs an idempotent consumer of `topics` in the background for the duration of the block.

    The block starts at once: joining a consumer group takes seconds, and half a minute after a
    kill (ARCHITECTURE.md), while a service's read API has no need to wait for it. `status` (a new
    one if not given; `/readyz` reads it) says when the consumer is live. Should the consumer
    fail, the process exits, so that its supervisor starts it again. `watch_broker_resets`: move to a new
    group when the broker has lost its data (`BrokerResetWatchdog`), for a memory-only broker.
    """
    status = status or ConsumerStatus()
    consumer = _consume(
        status, name, pool, handling, topics, bootstrap_servers, fetch_max_wait_ms, data_dir, clock, watch_broker_resets
    )
    async with essential_task(consumer, f"consumer {name}"):
        yield status


async def _consume(
    status: ConsumerStatus,
    name: str,
    pool: asyncpg.Pool,
    handling: Handling,
    topics: Sequence[str],
    bootstrap_servers: str,
    fetch_max_wait_ms: int,
    data_dir: Path,
    clock: Clock,
    watch_broker_resets: bool,
) -> None:
    # faust (with aiohttp) is a quarter of a consumer service's imports: loading it only now, in a
    # thread, lets HTTP come up sooner after a restart without stalling the requests meanwhile.
    asgi = await asyncio.to_thread(importlib.import_module, "faust.contrib.asgi")
    epochs = ConsumerEpochs(pool, name)
    epoch = 0
    if watch_broker_resets:  # before joining: the broker may have lost its data while this process was down
        epoch = await epochs.settle(await epochs.current(), await _topic_ids_once_reachable(bootstrap_servers, topics))
    group_id = epochs.group_id(epoch)
    streams = create_faust_app(group_id, bootstrap_servers, data_dir, fetch_max_wait_ms)
    consumer = IdempotentConsumer(
        name=name, pool=pool, handling=handling, dead_letters=FaustDeadLetterSink(streams, name), clock=clock
    )
    for topic in topics:
        subscribe(streams, consumer, topic)
    status.group_id, status.streams = group_id, streams
    background = [asyncio.create_task(ConsumerLagMonitor(bootstrap_servers, name, group_id, topics).run())]
    if watch_broker_resets:
        background.append(asyncio.create_task(BrokerResetWatchdog(bootstrap_servers, topics, epochs, epoch).run()))
    try:
        async with asgi.faust_app_running(streams, stop_timeout=10):
            await asyncio.Event().wait()  # until cancelled
    finally:
        if not streams.should_stop:  # cancelled while joining: faust_app_running did not get to stop it
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(streams.stop(), 10)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)


async def _topic_ids_once_reachable(
    bootstrap_servers: str, topics: Sequence[str], retry_seconds: float = 1.0
) -> dict[str, uuid.UUID]:
    while True:
        try:
            return await topic_ids(bootstrap_servers, topics)
        except (KafkaError, OSError, TimeoutError) as error:
            logger.warning("broker not reachable (%r); the consumer waits for it", error)
            await asyncio.sleep(retry_seconds)


async def topic_partitions(bootstrap_servers: str, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the topics that exist."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, **client_options())
    await reader.start()
    try:
        return [partition for topic in topics for partition in partitions_of(reader, topic)]
    finally:
        # A group-less reader stopped right after starting raises CancelledError from its own
        # committed-offsets task (aiokafka 0.14); that is not a cancellation of ours.
        with contextlib.suppress(asyncio.CancelledError):
            await reader.stop()


async def end_offsets(
    bootstrap_servers: str, partitions: list[TopicPartition], timeout_seconds: float = 10
) -> dict[TopicPartition, int]:
    """The offset after each partition's last message.

    The local broker (Tansu) answers ListOffsets with the start of the last batch rather than
    its end, so this also fetches from there: a fetch's high watermark is right on both brokers.
    """
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False, **client_options()
    )
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
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group_id, enable_auto_commit=False, **client_options()
    )
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
