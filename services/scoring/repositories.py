"""Where each complaint and each rectification order belongs, in scoring's own schema: the hall and period
of its opening event, which its later events name no more (`complaint_periods`, `order_periods`).

Each store has a PostgreSQL implementation on the connection of the consumer's batch, so that what a
batch records commits with the facts it applies; the tables are created by the service's migrations.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import ClassVar, Protocol

from shared.database import Connection


class SubjectPeriods(Protocol):
    async def record(self, opened: Sequence[tuple[uuid.UUID, str, str]]) -> None:
        """The hall and period of each subject opened, as (subject, hall, period); one recorded before keeps its
        own."""
        ...

    async def of(self, subjects: Collection[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
        """The hall and period of each of `subjects` that has them recorded."""
        ...


class PostgresSubjectPeriods:
    insert: ClassVar[str]
    select: ClassVar[str]

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    async def record(self, opened: Sequence[tuple[uuid.UUID, str, str]]) -> None:
        if opened:
            await self.connection.executemany(self.insert, opened)

    async def of(self, subjects: Collection[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
        if not subjects:
            return {}
        rows = await self.connection.fetch(self.select, list(subjects))
        return {row[0]: (row["hall_id"], row["period"]) for row in rows}


class PostgresComplaintPeriods(PostgresSubjectPeriods):
    insert = "INSERT INTO complaint_periods VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
    select = "SELECT complaint_id, hall_id, period FROM complaint_periods WHERE complaint_id = ANY($1::uuid[])"


class PostgresOrderPeriods(PostgresSubjectPeriods):
    insert = "INSERT INTO order_periods VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
    select = "SELECT order_id, hall_id, period FROM order_periods WHERE order_id = ANY($1::uuid[])"
