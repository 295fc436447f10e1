"""A hash chain over each event store, so that an altered, removed or slipped-in stored event shows.

Each stored event's hash is SHA-256 over the previous event of its aggregate's hash, then
`<originator id>:<version>:<topic>:` and the stored state (bytes as stored). A trigger on the events table
computes it in the transaction that inserts the event, into `event_hashes`, so no writer can skip it.
An altered event no longer matches its hash; altering both breaks the next event's link; a removed event
leaves its hash without it. What that cannot show, the removal or rewriting of an aggregate's newest
events together with their hashes, anchors show: an anchor records, at a notification id, the digest of
every aggregate's newest hash up to it, and later verifications recompute it (`services.verify_audit`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

EVENT_STORES = {"complaints": "complaints_events", "escalation": "escalation_events", "scoring": "scoring_events"}

# Anchors live apart from the services' schemas, in one only the auditor's role may write (in Kubernetes):
# a service's role, which owns its events and their hashes, cannot rewrite the anchors too.
ANCHORS_DDL = """
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.anchors (
    event_store text NOT NULL,
    notification_id bigint NOT NULL,
    heads_digest bytea NOT NULL,
    aggregates bigint NOT NULL,
    anchored_at timestamptz NOT NULL,
    PRIMARY KEY (event_store, notification_id)
);
"""

CHAIN_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.event_hashes (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    notification_id bigint NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (originator_id, originator_version)
);
CREATE OR REPLACE FUNCTION {schema}.event_hash(previous bytea, originator_id uuid, originator_version bigint,
                                               topic text, state bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(coalesce(previous, ''::bytea)
                  || convert_to(originator_id::text || ':' || originator_version::text || ':' || topic || ':', 'UTF8')
                  || state)
$$;
CREATE OR REPLACE FUNCTION {schema}.chain(originator_id uuid, originator_version bigint, notification_id bigint,
                                          topic text, state bytea) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO {schema}.event_hashes VALUES (
        originator_id, originator_version, notification_id,
        {schema}.event_hash(
            (SELECT hash FROM {schema}.event_hashes h
             WHERE h.originator_id = chain.originator_id AND h.originator_version = chain.originator_version - 1),
            originator_id, originator_version, topic, state))
$$;
CREATE OR REPLACE FUNCTION {schema}.chain_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {schema}.chain(NEW.originator_id, NEW.originator_version, NEW.notification_id, NEW.topic, NEW.state);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER chain_event AFTER INSERT ON {schema}.{table}
    FOR EACH ROW EXECUTE FUNCTION {schema}.chain_event();
DO $$
DECLARE stored record;
BEGIN  -- events stored before the chain existed join it, in their aggregates' order
    FOR stored IN
        SELECT e.* FROM {schema}.{table} e
        LEFT JOIN {schema}.event_hashes h USING (originator_id, originator_version)
        WHERE h.hash IS NULL ORDER BY e.originator_id, e.originator_version
    LOOP
        PERFORM {schema}.chain(
            stored.originator_id, stored.originator_version, stored.notification_id, stored.topic, stored.state);
    END LOOP;
END $$;
"""


def chain_ddl(schema: str, table: str) -> str:
    """Installs the chain on `schema`'s event store, the table `table` (a migration runs it)."""
    return CHAIN_DDL.format(schema=schema, table=table)


def event_hash(previous: bytes | None, originator_id: uuid.UUID, version: int, topic: str, state: bytes) -> bytes:
    """As the trigger computes it."""
    return hashlib.sha256((previous or b"") + f"{originator_id}:{version}:{topic}:".encode() + state).digest()


def heads_digest(heads: Iterable[tuple[uuid.UUID, bytes]]) -> bytes:
    """Of every aggregate's newest hash, in aggregate order."""
    digest = hashlib.sha256()
    for originator_id, head in sorted(heads):
        digest.update(originator_id.bytes + head)
    return digest.digest()


@dataclass(frozen=True)
class Break:
    schema: str
    notification_id: int | None
    originator_id: uuid.UUID | None
    version: int | None
    problem: str

    def __str__(self) -> str:
        where = f"notification {self.notification_id}" if self.notification_id is not None else "the anchors"
        of = f" (aggregate {self.originator_id} version {self.version})" if self.originator_id else ""
        return f"{self.schema}: {where}{of}: {self.problem}"


@dataclass(frozen=True)
class Verification:
    schema: str
    events: int
    aggregates: int
    breaks: list[Break]
    newest_notification_id: int
    heads_digest: bytes


async def verify(connection: asyncpg.Connection, schema: str) -> Verification:
    """Recomputes every hash of the schema's event store and every anchor; lists each break found."""
    breaks: list[Break] = []
    heads: dict[uuid.UUID, tuple[int, bytes]] = {}  # aggregate -> (notification id, recomputed hash)
    heads_at: list[tuple[int, uuid.UUID, bytes]] = []  # every (notification id, aggregate, hash), for anchors
    events = 0
    previous: tuple[uuid.UUID, int, bytes] | None = None
    async for row in _events_with_hashes(connection, schema):
        originator_id, version = row["originator_id"], row["originator_version"]
        if row["state"] is None:
            breaks.append(Break(schema, row["hashed_notification_id"], originator_id, version, "the event is gone"))
            continue
        events += 1
        prior = previous[2] if previous and previous[0] == originator_id and previous[1] == version - 1 else None
        if prior is None and version > 1:
            breaks.append(Break(schema, row["notification_id"], originator_id, version, "the event before is gone"))
        recomputed = event_hash(prior, originator_id, version, row["topic"], bytes(row["state"]))
        if row["hash"] is None:
            breaks.append(Break(schema, row["notification_id"], originator_id, version, "the event has no hash"))
        elif bytes(row["hash"]) != recomputed:
            problem = "the event does not match its hash (altered, or an event before it was)"
            breaks.append(Break(schema, row["notification_id"], originator_id, version, problem))
        previous = (originator_id, version, recomputed)
        heads[originator_id] = (row["notification_id"], recomputed)
        heads_at.append((row["notification_id"], originator_id, recomputed))
    breaks.extend(await _check_anchors(connection, schema, heads_at))
    newest = max((notification for notification, _ in heads.values()), default=0)
    digest = heads_digest((originator_id, head) for originator_id, (_, head) in heads.items())
    return Verification(schema, events, len(heads), breaks, newest, digest)


async def anchor(connection: asyncpg.Connection, verification: Verification, at: datetime) -> None:
    """Records the verified heads, for later verifications to recompute."""
    if verification.newest_notification_id and not verification.breaks:
        await connection.execute(
            "INSERT INTO audit.anchors VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            verification.schema,
            verification.newest_notification_id,
            verification.heads_digest,
            verification.aggregates,
            at,
        )


async def _events_with_hashes(connection: asyncpg.Connection, schema: str) -> AsyncIterator[asyncpg.Record]:
    query = f"""
        SELECT coalesce(e.originator_id, h.originator_id) AS originator_id,
               coalesce(e.originator_version, h.originator_version) AS originator_version,
               e.notification_id, e.topic, e.state, h.hash, h.notification_id AS hashed_notification_id
        FROM {schema}.{EVENT_STORES[schema]} e
        FULL OUTER JOIN {schema}.event_hashes h USING (originator_id, originator_version)
        ORDER BY 1, 2
    """  # noqa: S608 - names are EVENT_STORES' constants
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        async for row in connection.cursor(query, prefetch=1000):
            yield row


async def _check_anchors(
    connection: asyncpg.Connection, schema: str, heads_at: list[tuple[int, uuid.UUID, bytes]]
) -> list[Break]:
    breaks = []
    heads_at.sort()
    heads: dict[uuid.UUID, bytes] = {}
    position = 0
    anchors = "SELECT * FROM audit.anchors WHERE event_store = $1 ORDER BY notification_id"
    for anchored in await connection.fetch(anchors, schema) if await _anchors_exist(connection) else []:
        while position < len(heads_at) and heads_at[position][0] <= anchored["notification_id"]:
            _, originator_id, head = heads_at[position]
            heads[originator_id] = head
            position += 1
        if heads_digest(heads.items()) != bytes(anchored["heads_digest"]) or len(heads) != anchored["aggregates"]:
            problem = (
                f"the events up to notification {anchored['notification_id']}, anchored at"
                f" {anchored['anchored_at']:%Y-%m-%d %H:%M}, are not those anchored (some were removed or rewritten)"
            )
            breaks.append(Break(schema, None, None, None, problem))
    return breaks


async def _anchors_exist(connection: asyncpg.Connection) -> bool:
    return await connection.fetchval("SELECT to_regclass('audit.anchors')") is not None
