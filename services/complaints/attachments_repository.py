"""What is known of each attachment besides its bytes: its size and type, who uploaded it under which name and
when, and which complaints and orders refer to it; in the complaints schema.

On the event store's own connections (as `PostgresDataKeys`), so the use cases' threads use it as they use the
store. Whatever stores or deletes an attachment's bytes does so holding the attachment's advisory lock, within
the transaction that records it: an upload and the sweep that would delete the same bytes never interleave.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from psycopg import Cursor
from psycopg.rows import DictRow

from shared.application import retried_while_unavailable
from shared.event_store import ColumnarRecorder


@dataclass(frozen=True)
class Upload:
    unit: str
    name: str
    uploaded_at: datetime


@dataclass(frozen=True)
class Link:
    subject_kind: str  # complaint or rectification_order
    subject_id: uuid.UUID
    subject_unit: str  # the subject's hall, as an organisation unit path


@dataclass(frozen=True)
class AttachmentRecord:
    sha256: str
    size: int
    content_type: str
    uploads: tuple[Upload, ...]
    links: tuple[Link, ...]


class PostgresAttachments:
    def __init__(self, recorder: object) -> None:
        """`recorder`: the store's, whose connections these share."""
        assert isinstance(recorder, ColumnarRecorder), "the complaints store runs with ColumnarRecorder"
        self._datastore = recorder.datastore

    @contextmanager
    def _transaction(self, commit: bool = False) -> Iterator[Cursor[DictRow]]:
        """On the store's connections, whose search path is not the schema: set for the transaction."""
        with self._datastore.transaction(commit=commit) as cursor:
            cursor.execute("SELECT set_config('search_path', %s, true)", (self._datastore.schema or "public",))
            yield cursor

    @contextmanager
    def _locked(self, digests: Sequence[str]) -> Iterator[Cursor[DictRow]]:
        """A transaction holding the advisory lock of each digest (in one order, so two never deadlock)."""
        with self._transaction(commit=True) as cursor:
            for sha256 in sorted(set(digests)):
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext('attachment:' || %s))", (sha256,))
            yield cursor

    @retried_while_unavailable
    def record_upload(
        self, sha256: str, size: int, content_type: str, upload: Upload, store: Callable[[], None]
    ) -> None:
        """Records the upload (a unit's second upload of the same bytes renames and renews its first), then calls
        `store` to keep the bytes, before the record commits."""
        with self._locked([sha256]) as cursor:
            cursor.execute(
                "INSERT INTO attachments (sha256, size, content_type) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (sha256, size, content_type),
            )
            cursor.execute(
                "INSERT INTO attachment_uploads (sha256, unit, name, uploaded_at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (sha256, unit) DO UPDATE SET name = excluded.name, uploaded_at = excluded.uploaded_at",
                (sha256, upload.unit, upload.name, upload.uploaded_at),
            )
            store()

    @retried_while_unavailable
    def find(self, sha256: str) -> AttachmentRecord | None:
        with self._transaction() as cursor:
            cursor.execute("SELECT size, content_type FROM attachments WHERE sha256 = %s", (sha256,))
            found = cursor.fetchone()
            if found is None:
                return None
            cursor.execute(
                "SELECT unit, name, uploaded_at FROM attachment_uploads WHERE sha256 = %s ORDER BY uploaded_at",
                (sha256,),
            )
            uploads = tuple(Upload(row["unit"], row["name"], row["uploaded_at"]) for row in cursor.fetchall())
            cursor.execute(
                "SELECT subject_kind, subject_id, subject_unit FROM attachment_links WHERE sha256 = %s"
                " ORDER BY linked_at",
                (sha256,),
            )
            links = tuple(Link(r["subject_kind"], r["subject_id"], r["subject_unit"]) for r in cursor.fetchall())
        return AttachmentRecord(sha256, int(found["size"]), found["content_type"], uploads, links)

    @retried_while_unavailable
    def link(self, digests: Sequence[str], link: Link, at: datetime) -> list[str]:
        """Links the attachments to the subject; returns those no longer recorded (swept meanwhile), unlinked."""
        with self._locked(digests) as cursor:
            cursor.execute("SELECT sha256 FROM attachments WHERE sha256 = ANY(%s)", (list(digests),))
            present = {row["sha256"] for row in cursor.fetchall()}
            for sha256 in present:
                cursor.execute(
                    "INSERT INTO attachment_links (sha256, subject_kind, subject_id, subject_unit, linked_at)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (sha256, link.subject_kind, link.subject_id, link.subject_unit, at),
                )
        return [sha256 for sha256 in digests if sha256 not in present]

    @retried_while_unavailable
    def linked_to(self, subject_id: uuid.UUID) -> list[str]:
        with self._transaction() as cursor:
            cursor.execute("SELECT sha256 FROM attachment_links WHERE subject_id = %s", (subject_id,))
            return [row["sha256"] for row in cursor.fetchall()]

    def unlink_subject(self, subject_id: uuid.UUID, delete_bytes: Callable[[str], None]) -> list[str]:
        """Removes the subject's links; an attachment no other subject links is deleted, its bytes (by
        `delete_bytes`) first. Returns the digests deleted."""
        return [sha256 for sha256 in self.linked_to(subject_id) if self._unlink(sha256, subject_id, delete_bytes)]

    @retried_while_unavailable
    def _unlink(self, sha256: str, subject_id: uuid.UUID, delete_bytes: Callable[[str], None]) -> bool:
        """Whether the attachment went with its last link."""
        with self._locked([sha256]) as cursor:
            cursor.execute("DELETE FROM attachment_links WHERE sha256 = %s AND subject_id = %s", (sha256, subject_id))
            cursor.execute("SELECT 1 FROM attachment_links WHERE sha256 = %s", (sha256,))
            if cursor.fetchone() is not None:
                return False
            delete_bytes(sha256)
            cursor.execute("DELETE FROM attachments WHERE sha256 = %s", (sha256,))
            return True

    def delete_unlinked(self, uploaded_before: datetime, delete_bytes: Callable[[str], None], limit: int) -> int:
        """Deletes the attachments no subject links and no one uploaded since `uploaded_before`, their bytes (by
        `delete_bytes`) first; returns how many."""
        due = self._unlinked(uploaded_before, limit)
        return sum(self._delete_if_unlinked(sha256, uploaded_before, delete_bytes) for sha256 in due)

    @retried_while_unavailable
    def _delete_if_unlinked(self, sha256: str, uploaded_before: datetime, delete_bytes: Callable[[str], None]) -> bool:
        """False if it was uploaded again or linked meanwhile."""
        with self._locked([sha256]) as cursor:
            if not self._unlinked_since(uploaded_before, 1, sha256, cursor):
                return False
            delete_bytes(sha256)
            cursor.execute("DELETE FROM attachments WHERE sha256 = %s", (sha256,))
            return True

    _UNLINKED = (
        "SELECT a.sha256 FROM attachments a WHERE (%s::text IS NULL OR a.sha256 = %s)"
        " AND NOT EXISTS (SELECT 1 FROM attachment_links l WHERE l.sha256 = a.sha256)"
        " AND NOT EXISTS (SELECT 1 FROM attachment_uploads u WHERE u.sha256 = a.sha256 AND u.uploaded_at >= %s)"
        " LIMIT %s"
    )

    @retried_while_unavailable
    def _unlinked(self, instant: datetime, limit: int) -> list[str]:
        with self._transaction() as cursor:
            return self._unlinked_since(instant, limit, None, cursor)

    def _unlinked_since(self, instant: datetime, limit: int, sha256: str | None, cursor: Cursor[DictRow]) -> list[str]:
        cursor.execute(self._UNLINKED, (sha256, sha256, instant, limit))
        return [row["sha256"] for row in cursor.fetchall()]
