"""The event store every service records in: eventsourcing's PostgreSQL recorder, writing a save's events
as one array per column.

eventsourcing inserts a save as one array of a composite type, which psycopg adapts value by value in
Python, holding the GIL that a service's event loop needs too; in intake's profile under load it was the
largest part of the group-commit writer's Python. Arrays of plain columns are adapted in C: with this
recorder and the data keys written the same way, intake rose from about 690 to 900-1,040 POST/s. The
statement, its table lock and its NOTIFY are otherwise eventsourcing's, so commit order still equals
notification order. `LoopInserts` writes the same statements through asyncpg, for a service that commits on
its event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor, sql
from psycopg.rows import DictRow

from shared.database import Connection


def events_table(recorder: object) -> sql.Identifier:
    """The schema-qualified table of a service's stored events."""
    assert isinstance(recorder, PostgresApplicationRecorder), "every service records in PostgreSQL"
    return sql.Identifier(recorder.datastore.schema, recorder.events_table_name)


class ColumnarRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._insert_columns = sql.SQL(
            "INSERT INTO {} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%s::uuid[], %s::int[], %s::text[], %s::bytea[]) RETURNING notification_id"
        ).format(events_table(self))

    def _insert_stored_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self._insert_columns,
            (
                [event.originator_id for event in stored_events],
                [event.originator_version for event in stored_events],
                [event.topic for event in stored_events],
                [event.state for event in stored_events],
            ),
            prepare=False,  # a prepare that fails in a pipeline (a version conflict) leaves psycopg thinking it exists
        )


class LoopInserts:
    """ColumnarRecorder's statements for asyncpg, for a service that commits on its event loop: eventsourcing's
    own lock statements and NOTIFY, and one array per column, in a transaction the caller holds open."""

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        notify = sql.SQL("NOTIFY {}").format(sql.Identifier(recorder.channel_name))
        locks = cast(list[sql.Composable], recorder.lock_table_statements)  # typed as any query; built with sql.SQL
        self._lock_and_notify = "; ".join(statement.as_string() for statement in [*locks, notify])
        table = events_table(recorder).as_string()
        self._insert = (
            f"INSERT INTO {table} (originator_id, originator_version, topic, state)"  # noqa: S608 - an identifier
            " SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::bytea[])"
        )

    async def insert(self, connection: Connection, stored_events: Sequence[StoredEvent]) -> None:
        """Raises asyncpg's UniqueViolationError if an event's version is taken."""
        await connection.execute(self._lock_and_notify)
        await connection.execute(
            self._insert,
            [event.originator_id for event in stored_events],
            [event.originator_version for event in stored_events],
            [event.topic for event in stored_events],
            [event.state for event in stored_events],
        )
