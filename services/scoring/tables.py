"""Rows of the tables scoring serves (results register, monthly report), as CSV text and spreadsheet cells."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence


def cell(value: object) -> object:
    """Numbers and text as they are; nothing as empty; yes/no as `true`/`false`; a breakdown as
    `key: n; key: n` (one nested a level deeper as `key inner: n`); a list as `a, b`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "; ".join(_entries(value))
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return value


def _entries(breakdown: dict[object, object], prefix: str = "") -> Iterable[str]:
    for key, inner in breakdown.items():
        if isinstance(inner, dict):
            yield from _entries(inner, f"{prefix}{key} ")
        else:
            yield f"{prefix}{key}: {inner}"


def as_csv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()
