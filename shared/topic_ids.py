"""Topic ids: the broker's identity for each incarnation of a topic.

A broker gives a topic a new id (a UUID) whenever it creates it: after the topic was deleted,
and after the broker lost its data (the local broker keeps topics in memory). Offsets only mean
something within one id, so a consumer compares ids to tell that its group's offsets belong to
data that is gone. Offsets going down cannot tell: the relay may have published more to the new
topic than the old one held before anyone looked.

aiokafka 0.14 speaks Metadata only up to v5, and topic ids came with v10 (Kafka 2.8), so the
request and response of Metadata v12 (Kafka 3.1+, and the local broker) are spelled out here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from io import BytesIO

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    AbstractType,
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from shared.kafka_auth import client_options

NO_ERROR = 0
NO_TOPIC_ID = uuid.UUID(int=0)


class Uuid(AbstractType[uuid.UUID]):  # type: ignore[misc] # aiokafka is untyped
    @classmethod
    def encode(cls, value: uuid.UUID) -> bytes:
        return value.bytes

    @classmethod
    def decode(cls, data: BytesIO) -> uuid.UUID:
        return uuid.UUID(bytes=data.read(16))


class MetadataResponse_v12(Response):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 12
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            CompactArray(
                ("node_id", Int32),
                ("host", CompactString("utf-8")),
                ("port", Int32),
                ("rack", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            CompactArray(
                ("error_code", Int16),
                ("name", CompactString("utf-8")),
                ("topic_id", Uuid),
                ("is_internal", Boolean),
                (
                    "partitions",
                    CompactArray(
                        ("error_code", Int16),
                        ("partition_index", Int32),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("replica_nodes", CompactArray(Int32)),
                        ("isr_nodes", CompactArray(Int32)),
                        ("offline_replicas", CompactArray(Int32)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("topic_authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class MetadataRequest_v12(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 12
    RESPONSE_TYPE = MetadataResponse_v12
    SCHEMA = Schema(
        ("topics", CompactArray(("topic_id", Uuid), ("name", CompactString("utf-8")), ("tags", TaggedFields))),
        ("allow_auto_topic_creation", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class TopicIdsRequest(Request[MetadataRequest_v12]):  # type: ignore[misc]
    API_KEY = 3

    def __init__(self, topics: Sequence[str], create_missing: bool) -> None:
        self.topics = topics
        self.create_missing = create_missing  # where the broker creates topics on demand

    def build(self, request_struct_class: type[MetadataRequest_v12]) -> MetadataRequest_v12:
        topics: list[tuple[uuid.UUID, str, dict[str, object]]] = [(NO_TOPIC_ID, topic, {}) for topic in self.topics]
        return request_struct_class(topics, self.create_missing, False, {})


async def topic_ids(bootstrap_servers: str, topics: Sequence[str], timeout_ms: int = 5000) -> dict[str, uuid.UUID]:
    """Each existing topic's id; a topic the broker does not have is left out (asking creates none)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=timeout_ms, **client_options())
    await client.bootstrap()
    try:
        return await topic_ids_from(client, topics, create_missing=False)
    finally:
        await client.close()


async def topic_ids_from(
    client: AIOKafkaClient, topics: Sequence[str], *, create_missing: bool
) -> dict[str, uuid.UUID]:
    """`topic_ids`, asked through a client that is already connected (a producer's, say)."""
    response = await client.send(client.get_random_node(), TopicIdsRequest(topics, create_missing))
    return {
        name: topic_id
        for error_code, name, topic_id, *_ in response.topics
        if error_code == NO_ERROR and topic_id != NO_TOPIC_ID
    }
