"""Opaque keyset cursors: where a page ended (an instant, or none, and a row's id), for the next to start after.

Opaque, so that clients pass them back as they came (URL-safe base64 of JSON: no `+` to encode)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime


class BadCursor(ValueError):
    pass


def encode_cursor(instant: datetime | None, row_id: uuid.UUID) -> str:
    position = [instant.isoformat() if instant else None, str(row_id)]
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, uuid.UUID]:
    try:
        instant, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = datetime.fromisoformat(instant) if instant else None
        if at is not None and at.utcoffset() is None:
            raise ValueError("an instant without its offset")  # it would not compare with the stored ones
        return at, uuid.UUID(row_id)
    except (ValueError, TypeError) as bad:  # json, base64 and uuid errors are all ValueErrors
        raise BadCursor("not a cursor returned by this endpoint") from bad
