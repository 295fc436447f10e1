"""Evidence files (attachments): what may be uploaded, how a file is addressed, and how long it is kept.
Pure: no I/O, no framework.

A file is addressed by the SHA-256 of its bytes: its id is the hex digest, so the same bytes uploaded twice are
one file, and a stored file altered since shows as a digest that no longer matches its id.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import puremagic

from services.complaints.personal_data import mask_identifiers

SHA256_PATTERN = r"^[0-9a-f]{64}$"
# How much of a file's start the type is told from: every signature below lies within it.
SNIFFED_BYTES = 8192
MAX_NAME_LENGTH = 200

# The types a file may be of (photos, documents, recordings of calls), by the extension puremagic's best
# match names for the file's own first bytes: the type the client declares is not trusted.
ALLOWED_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jfif": "image/jpeg",
    ".jpe": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".mpga": "audio/mpeg",
    ".amr": "audio/amr",
    ".m4a": "audio/mp4",
    ".f4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
}


def sniff_type(head: bytes) -> str | None:
    """The media type the bytes are of, told from their magic numbers, if it is one allowed; None otherwise."""
    try:
        matches = puremagic.magic_string(head[:SNIFFED_BYTES])
    except (puremagic.PureError, ValueError):  # no signature matched, or no bytes at all
        return None
    return ALLOWED_TYPES.get(matches[0].extension.lower()) if matches else None


def is_attachment_id(text: str) -> bool:
    return re.fullmatch(SHA256_PATTERN, text) is not None


def blob_path(sha256: str) -> str:
    """Where the bytes are kept in the store: fanned out by the digest's first byte, so no folder holds all."""
    if not is_attachment_id(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return f"{sha256[:2]}/{sha256}"


def clean_name(name: str | None) -> str:
    """The file's name as uploaded, fit to be stored and published: no folders, no control or invisible
    characters, at most `MAX_NAME_LENGTH` characters, and phone or ID numbers in it masked."""
    base = re.split(r"[/\\]", name or "")[-1]
    kept = "".join(c for c in unicodedata.normalize("NFKC", base) if unicodedata.category(c)[0] not in "CZ" or c == " ")
    return mask_identifiers(kept.strip()[:MAX_NAME_LENGTH]) or "unnamed"


@dataclass(frozen=True)
class AttachmentRef:
    """What an event says of a file it refers to: nothing of who uploaded it."""

    sha256: str
    size: int
    content_type: str
    name: str

    def as_event_field(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RetentionPolicy:
    """An upload no step has referred to is deleted `unlinked_hours` after it was (last) uploaded; one that a
    complaint or an order refers to is kept as long as it: until the complaint's customer is erased."""

    unlinked_hours: float

    def unlinked_expire_before(self, now: datetime) -> datetime:
        """Unlinked uploads made before this instant are due for deletion."""
        return now - timedelta(hours=self.unlinked_hours)

    def is_due(self, uploaded_at: datetime, linked: bool, now: datetime) -> bool:
        return not linked and uploaded_at < self.unlinked_expire_before(now)
