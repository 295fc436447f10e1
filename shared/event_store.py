"""The event store every service records in: eventsourcing's PostgreSQL recorder, writing a save's events
as one array per column.

eventsourcing inserts a save as one array of a composite type, which psycopg adapts value by value in
Python; with batched saves (intake's group commit, the consumers' batches) that held the GIL for a fifth
of intake's time. Arrays of plain columns are adapted in C. The statement, its table lock and its
NOTIFY are otherwise eventsourcing's, so commit order still equals notification order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor, sql
from psycopg.rows import DictRow


class ColumnarRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._insert_columns = sql.SQL(
            "INSERT INTO {} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%s::uuid[], %s::int[], %s::text[], %s::bytea[]) RETURNING notification_id"
        ).format(sql.Identifier(self.datastore.schema, self.events_table_name))

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
        )
