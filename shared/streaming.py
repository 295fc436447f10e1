"""faust wiring for `IdempotentConsumer`: the agent only parses and delegates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from shared.consumer import IdempotentConsumer, ReceivedMessage, dead_letter_record
from shared.topics import dead_letter_topic


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
                )
            )

    app.agent(topic, name=f"{consumer.name}-{topic_name}")(consume)
