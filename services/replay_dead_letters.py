"""`python -m services.replay_dead_letters CONSUMER` (`make replay-dead-letters CONSUMER=projections`): once the
cause of a consumer's dead letters is fixed, sends each of them again to the topic it came from.

Only a dead letter that is now a valid event is re-driven: one that still does not decode is listed with
why, and left. Every consumer of the source topic drops what it has already applied (its inbox), so only
the one that refused it applies it now. Idempotent: each replayed dead letter is recorded (topic,
partition, offset) in `dead_letter_replays` of the consumer's schema in the same run that sends it, so a
second run sends nothing again; a run that dies between a send and its record sends that one again, which
the consumers drop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared.contracts import InvalidEvent, decode_event
from shared.database import create_pool
from shared.kafka_auth import client_options
from shared.migrations import CONSUMER, migrate_schema
from shared.settings import ServiceSettings
from shared.topics import dead_letter_topic

CONSUMERS = ("escalation", "scoring", "projections")


@dataclass
class Replay:
    replayed: int = 0
    already_replayed: int = 0
    still_invalid: list[str] = field(default_factory=list)  # "partition@offset: why", for the operator


async def replay_dead_letters(consumer: str, database_url: str, bootstrap_servers: str) -> Replay:
    """Every dead letter of `consumer` up to the topic's end when the run began."""
    pool = await create_pool(database_url, consumer, max_size=1)
    await migrate_schema(database_url, consumer, [CONSUMER])  # its `dead_letter_replays`
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False, **client_options()
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", **client_options())
    try:
        await reader.start()
        await producer.start()
        topic = dead_letter_topic(consumer)
        partitions = [TopicPartition(topic, number) for number in sorted(reader.partitions_for_topic(topic) or ())]
        if not partitions:
            return Replay()
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        ends = await reader.end_offsets(partitions)
        replay = Replay()
        while [partition for partition in partitions if await reader.position(partition) < ends[partition]]:
            for records in (await reader.getmany(timeout_ms=1000)).values():
                for record in records:
                    if record.offset < ends[TopicPartition(record.topic, record.partition)]:
                        await _replay(record, pool, producer, replay)
        return replay
    finally:
        await producer.stop()
        await reader.stop()
        await pool.close()


async def _replay(
    record: ConsumerRecord[bytes, bytes], pool: asyncpg.Pool, producer: AIOKafkaProducer, replay: Replay
) -> None:
    where = f"{record.partition}@{record.offset}"
    try:
        letter = json.loads(record.value or b"")
        source, value = letter["source_topic"], (letter["value"] or "").encode()
        key = letter["key"].encode() if letter.get("key") else None
        decode_event(value)
    except InvalidEvent as invalid:
        replay.still_invalid.append(f"{where}: {invalid}")
        return
    except (ValueError, KeyError, TypeError, AttributeError):
        replay.still_invalid.append(f"{where}: not a dead letter of this platform")
        return
    noted = await pool.fetchval(
        'SELECT 1 FROM dead_letter_replays WHERE topic = $1 AND partition = $2 AND "offset" = $3',
        record.topic,
        record.partition,
        record.offset,
    )
    if noted:
        replay.already_replayed += 1
        return
    await producer.send_and_wait(
        source, value, key=key, headers=[("replayed_from", f"{record.topic}:{where}".encode())]
    )
    await pool.execute(
        'INSERT INTO dead_letter_replays (topic, partition, "offset") VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
        record.topic,
        record.partition,
        record.offset,
    )
    replay.replayed += 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.replay_dead_letters", description=__doc__)
    parser.add_argument("consumer", choices=CONSUMERS, help="whose dead letters")
    arguments = parser.parse_args()
    settings = ServiceSettings()
    replay = asyncio.run(
        replay_dead_letters(arguments.consumer, str(settings.database_url), settings.kafka_bootstrap_servers)
    )
    for problem in replay.still_invalid:
        print(f"not replayed, still invalid: {problem}")
    print(
        f"{arguments.consumer}: {replay.replayed} dead letters sent again, {replay.already_replayed} replayed"
        f" before, {len(replay.still_invalid)} still invalid"
    )


if __name__ == "__main__":
    main()
