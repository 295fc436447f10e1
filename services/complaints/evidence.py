"""Use cases of attachments (evidence): keep an upload, let those in scope read and verify it, link it to the
steps that refer to it, erase it with its complaint's customer, and delete uploads nothing refers to.

Plain functions, which FastAPI runs in its thread pool, as the complaints' own use cases.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.complaints.attachments import AttachmentRef, RetentionPolicy, sniff_type
from services.complaints.attachments_repository import AttachmentRecord, Link, PostgresAttachments, Upload
from services.complaints.blobs import Blobs
from shared.auth import Principal
from shared.clock import Clock
from shared.errors import ServiceError
from shared.organisation import OrgUnit

SWEEP_BATCH = 500


class AttachmentNotFound(ServiceError):
    status_code = 404
    error_type = "not_found"
    field = ("path", "attachment_id")


class UnknownAttachment(ServiceError):
    """A step refers to an attachment that is not there, or not the caller's to see."""

    status_code = 422
    error_type = "unknown_attachment"


class UnsupportedType(ServiceError):
    status_code = 415
    error_type = "unsupported_type"
    field = ("body", "file")


@dataclass(frozen=True)
class ReceivedFile:
    """An uploaded file, spooled to `path` as it arrived, with its digest, size, first bytes and name."""

    path: Path
    sha256: str
    size: int
    head: bytes
    name: str


@dataclass(frozen=True)
class Verification:
    id: str
    intact: bool
    sha256_now: str | None  # None: no bytes are stored under the id any more
    size_now: int | None


class Evidence:
    def __init__(self, repository: PostgresAttachments, blobs: Blobs, policy: RetentionPolicy, clock: Clock) -> None:
        self.repository = repository
        self.blobs = blobs
        self.policy = policy
        self.clock = clock

    def keep(self, received: ReceivedFile, viewer: Principal) -> AttachmentRef:
        """Stores the file under its digest and records the caller's unit as an uploader; 415 unless its own
        bytes say it is of an allowed type."""
        content_type = sniff_type(received.head)
        if content_type is None:
            raise UnsupportedType("the file is not an image (PNG, JPEG, GIF, WebP), a PDF or a call recording")
        upload = Upload(str(viewer.unit), received.name, self.clock())
        self.repository.record_upload(
            received.sha256,
            received.size,
            content_type,
            upload,
            lambda: self.blobs.put(received.sha256, received.path),
        )
        return AttachmentRef(received.sha256, received.size, content_type, received.name)

    def readable(self, sha256: str, viewer: Principal) -> AttachmentRef:
        """The attachment, if the viewer sees a unit that uploaded it or the hall of a subject linking it; as if
        it did not exist otherwise (404)."""
        record = self.repository.find(sha256)
        if record is None or not visible(record, viewer):
            raise AttachmentNotFound(f"no attachment {sha256}")
        return ref_as_seen_by(record, viewer)

    def chunks(self, sha256: str) -> Iterator[bytes]:
        try:
            yield from self.blobs.chunks(sha256)
        except FileNotFoundError:
            raise AttachmentNotFound(f"the bytes of attachment {sha256} are no longer stored") from None

    def verify(self, sha256: str, viewer: Principal) -> Verification:
        """Hashes the stored bytes again: intact if they still have the digest that is their id."""
        ref = self.readable(sha256, viewer)
        now = self.blobs.digest_now(sha256)
        if now is None:
            return Verification(sha256, False, None, None)
        digest, size = now
        return Verification(sha256, digest == sha256 and size == ref.size, digest, size)

    def refs_for(self, ids: Sequence[str], viewer: Principal, field: tuple[str | int, ...]) -> list[AttachmentRef]:
        """What a step's event says of each attachment it refers to; 422 naming the entry (`field`, index) of one
        that the viewer cannot see."""
        refs = []
        for index, sha256 in enumerate(ids):
            record = self.repository.find(sha256)
            if record is None or not visible(record, viewer):
                raise UnknownAttachment(f"no attachment {sha256}; upload it first", (*field, index))
            refs.append(ref_as_seen_by(record, viewer))
        return list({ref.sha256: ref for ref in refs}.values())

    def link(
        self,
        refs: Sequence[AttachmentRef],
        kind: str,
        subject_id: uuid.UUID,
        unit: OrgUnit,
        field: tuple[str | int, ...],
    ) -> None:
        """Keeps the attachments as long as the subject (a complaint or a rectification order of a hall in
        `unit`), and lets whoever sees that hall read them."""
        if not refs:
            return
        gone = self.repository.link([ref.sha256 for ref in refs], Link(kind, subject_id, str(unit)), self.clock())
        if gone:
            raise UnknownAttachment(f"attachment {gone[0]} was deleted meanwhile; upload it again", field)

    def erase_subject(self, subject_id: uuid.UUID) -> int:
        """With its customer's data, a complaint's attachments go: each one no other subject links is deleted,
        bytes and record. Returns how many."""
        return len(self.repository.unlink_subject(subject_id, self.blobs.delete))

    def delete_expired(self, limit: int = SWEEP_BATCH) -> int:
        """Deletes uploads that no step referred to within the policy's hours; returns how many."""
        before = self.policy.unlinked_expire_before(self.clock())
        return self.repository.delete_unlinked(before, self.blobs.delete, limit)


def visible(record: AttachmentRecord, viewer: Principal) -> bool:
    units = [upload.unit for upload in record.uploads] + [link.subject_unit for link in record.links]
    return any(viewer.can_see(OrgUnit.parse(unit)) for unit in units)


def ref_as_seen_by(record: AttachmentRecord, viewer: Principal) -> AttachmentRef:
    """Named as the viewer's own unit uploaded it, else as its first uploader did."""
    names = {upload.unit: upload.name for upload in record.uploads}
    name = names.get(str(viewer.unit)) or (record.uploads[0].name if record.uploads else "unnamed")
    return AttachmentRef(record.sha256, record.size, record.content_type, name)
