"""The customer notifications waiting, sent or failed: one row per (complaint, trigger event, channel).

The row's key makes planning idempotent: reading the same trigger event again (a restart, a second
replica) adds nothing. A row holds no address and no words: the address is read from the complaint's
sealed customer data when it is sent. Replicas share the queue: each takes due rows under a lease, so
a replica that dies mid-send leaves its rows to another once the lease ends.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class Notification:
    complaint_id: uuid.UUID
    occurrence: int
    channel: str
    trigger: str
    template: str
    template_version: int
    result_at: datetime | None
    due_at: datetime
    attempts: int = 0
    state: str = "pending"
    last_error: str | None = None
    finished_at: datetime | None = None

    @property
    def key(self) -> str:
        """Names it among the complaint's notifications, on its timeline and to the channel."""
        return f"{self.occurrence}:{self.channel}"


class NotificationQueue:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def position(self, planner: str, newest: int) -> int:
        """Where planning goes on from; a new planner starts at `newest`, so that a first deployment does not
        notify the customers of every complaint already stored."""
        await self.pool.execute(
            "INSERT INTO notification_positions VALUES ($1, $2) ON CONFLICT (planner) DO NOTHING", planner, newest
        )
        return int(await self.pool.fetchval("SELECT position FROM notification_positions WHERE planner = $1", planner))

    async def plan(self, planner: str, notifications: list[Notification], read_from: int, read_to: int) -> bool:
        """Adds the notifications that are new and moves the planner on, in one transaction; False (nothing
        done) if another replica moved it first."""
        async with self.pool.acquire() as connection, connection.transaction():
            moved = await connection.execute(
                "UPDATE notification_positions SET position = $3 WHERE planner = $1 AND position = $2",
                planner,
                read_from,
                read_to,
            )
            if not moved.endswith(" 1"):
                return False
            await connection.executemany(
                """
                INSERT INTO customer_notifications (
                    complaint_id, occurrence, channel, trigger, template, template_version, result_at, due_at
                ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT DO NOTHING
                """,
                [_row(notification) for notification in notifications],
            )
        return True

    async def take_due(self, now: datetime, limit: int) -> list[Notification]:
        """Pending notifications due by `now` that no replica holds, leased to this one."""
        rows = await self.pool.fetch(
            """
            UPDATE customer_notifications SET leased_until = $1::timestamptz + $3::interval
            WHERE (complaint_id, occurrence, channel) IN (
                SELECT complaint_id, occurrence, channel FROM customer_notifications
                WHERE state = 'pending' AND due_at <= $1 AND (leased_until IS NULL OR leased_until < $1)
                ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED
            )
            RETURNING complaint_id, occurrence, channel, trigger, template, template_version, result_at, due_at,
                attempts, state, last_error, finished_at
            """,
            now,
            limit,
            LEASE,
        )
        return sorted(map(_notification, rows), key=lambda notification: notification.due_at)

    async def hold(self, notification: Notification, until: datetime) -> None:
        await self.pool.execute(
            "UPDATE customer_notifications SET due_at = $4, leased_until = NULL"
            " WHERE complaint_id = $1 AND occurrence = $2 AND channel = $3",
            *_key(notification),
            until,
        )

    async def retry(self, notification: Notification, at: datetime, error: str) -> None:
        await self.pool.execute(
            "UPDATE customer_notifications SET attempts = attempts + 1, due_at = $4, last_error = $5,"
            " leased_until = NULL WHERE complaint_id = $1 AND occurrence = $2 AND channel = $3",
            *_key(notification),
            at,
            error,
        )

    async def finish(self, notification: Notification, at: datetime, error: str | None) -> None:
        """Sent (`error` None) or failed for good."""
        await self.pool.execute(
            "UPDATE customer_notifications SET attempts = attempts + 1, state = $5, last_error = $6,"
            " finished_at = $4, leased_until = NULL WHERE complaint_id = $1 AND occurrence = $2 AND channel = $3",
            *_key(notification),
            at,
            "sent" if error is None else "failed",
            error,
        )

    async def unrecorded(self, limit: int) -> list[Notification]:
        rows = await self.pool.fetch(
            """
            SELECT complaint_id, occurrence, channel, trigger, template, template_version, result_at, due_at,
                attempts, state, last_error, finished_at
            FROM customer_notifications WHERE state <> 'pending' AND NOT recorded ORDER BY finished_at LIMIT $1
            """,
            limit,
        )
        return [_notification(row) for row in rows]

    async def mark_recorded(self, notification: Notification) -> None:
        await self.pool.execute(
            "UPDATE customer_notifications SET recorded = true"
            " WHERE complaint_id = $1 AND occurrence = $2 AND channel = $3",
            *_key(notification),
        )


def _notification(row: asyncpg.Record) -> Notification:
    # asyncpg's own UUID type, which the event store's transcoder does not know
    return Notification(**{**row, "complaint_id": uuid.UUID(bytes=row["complaint_id"].bytes)})


def _key(notification: Notification) -> tuple[uuid.UUID, int, str]:
    return notification.complaint_id, notification.occurrence, notification.channel


def _row(notification: Notification) -> tuple[object, ...]:
    return (
        *_key(notification),
        notification.trigger,
        notification.template,
        notification.template_version,
        notification.result_at,
        notification.due_at,
    )
