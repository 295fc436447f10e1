"""A batch of read-model writes, run as a few statements instead of one per event and table."""

from __future__ import annotations

import itertools
import re

import asyncpg

from shared.consumer import Connection

# An insert without ON CONFLICT can be a COPY, several times faster; its values are all parameters.
# A statement's first word, by statement: a rebuild classifies millions of statements, of a handful of texts.
STATEMENT_KINDS: dict[str, str] = {}
PLAIN_INSERT = re.compile(
    r"^\s*INSERT INTO (?P<table>\w+)\s*(?:\((?P<columns>[^)]*)\))?\s*VALUES\s*\((?:\s*\$\d+(?:::\w+)?\s*,?)+\)\s*$",
    re.IGNORECASE,
)


class Statements:
    """Collects what a batch's handlers execute, to run it as a few `executemany` (or COPY) calls.

    Read-model handlers only insert rows, and update rows only in stream order (each update
    names its row and version). So a batch's inserts, grouped per statement, go first; then
    its updates in stream order. A handler that reads or does anything else fails here with
    `NotImplementedError`, and its batch must be applied one event at a time instead. The
    rebuild's comparison with the live models is what proves the result is the same.
    """

    def __init__(self) -> None:
        self.inserts: dict[str, list[tuple[object, ...]]] = {}
        self.updates: list[tuple[str, tuple[object, ...]]] = []

    async def execute(self, statement: str, *arguments: object) -> str:
        kind = STATEMENT_KINDS.get(statement) or STATEMENT_KINDS.setdefault(statement, statement.split()[0].upper())
        if kind == "INSERT":
            self.inserts.setdefault(statement, []).append(arguments)
        elif kind == "UPDATE":
            self.updates.append((statement, arguments))
        else:
            raise NotImplementedError(f"a batch of read-model writes cannot run {kind}")
        return ""

    async def run(self, connection: asyncpg.Connection | Connection) -> None:
        for statement, rows in self.inserts.items():
            if plain := PLAIN_INSERT.match(statement):
                columns = [c.strip() for c in plain["columns"].split(",")] if plain["columns"] else None
                await connection.copy_records_to_table(plain["table"], records=rows, columns=columns)
            else:
                await connection.executemany(statement, rows)
        for statement, run in itertools.groupby(self.updates, key=lambda update: update[0]):
            await connection.executemany(statement, [arguments for _, arguments in run])
