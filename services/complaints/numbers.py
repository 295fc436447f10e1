"""Complaint serials, handed out from blocks that the database reserves: one round trip per block.

A block is one `nextval` of a sequence that steps by the block's size, so replicas never share a
serial. A serial left unused when a process stops is never given: numbers may have gaps.
"""

from __future__ import annotations

import threading
import uuid

from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

COMPLAINT_NUMBER_SEQUENCE = "complaint_number_seq"
BLOCK_SIZE = 100


class PostgresSerialBlocks:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        self.statement = sql.SQL("SELECT nextval({}) AS first").format(
            sql.Literal(f"{datastore.schema}.{COMPLAINT_NUMBER_SEQUENCE}")
        )

    def reserve(self) -> int:
        """The first serial of a block of `BLOCK_SIZE` that no one else is given."""
        with self.datastore.get_connection() as connection:
            row = connection.execute(self.statement).fetchone()
        assert row is not None
        return int(row["first"])


class Serials:
    """Thread-safe: requests take serials from the block this process holds."""

    def __init__(self, blocks: PostgresSerialBlocks) -> None:
        self.blocks = blocks
        self._lock = threading.Lock()
        self._next = self._end = 0

    def take(self) -> int:
        with self._lock:
            if self._next == self._end:
                self._next = self.blocks.reserve()
                self._end = self._next + BLOCK_SIZE
            serial = self._next
            self._next += 1
            return serial


class LegacyNumbers:
    """The table that held number → complaint before numbers were saved with their complaints."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        self.table = sql.Identifier(datastore.schema, "complaint_numbers")

    def given(self) -> list[tuple[str, uuid.UUID]]:
        with self.datastore.get_connection() as connection:
            exists = connection.execute("SELECT to_regclass(%s) AS t", (f"{self.datastore.schema}.complaint_numbers",))
            row = exists.fetchone()
            if row is None or row["t"] is None:
                return []
            rows = connection.execute(sql.SQL("SELECT number, complaint_id FROM {}").format(self.table)).fetchall()
        return [(row["number"], row["complaint_id"]) for row in rows]

    def drop(self) -> None:
        with self.datastore.get_connection() as connection:
            connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.table))
