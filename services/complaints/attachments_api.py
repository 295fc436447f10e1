"""REST for attachments: a streamed multipart upload, scope-checked downloads, and a check that stored bytes
still match their id.

The upload is never held in memory: the body is read as it arrives (`request.stream()`), pushed through
python-multipart's streaming parser into a temporary file while it is hashed, and refused with 413 as soon as
the file passes the cap. `shared/body_limit.py` lets this one path through unbuffered, credentials checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar
from urllib.parse import quote

from fastapi import APIRouter, Request, status
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from services.complaints.access import ACCESS
from services.complaints.attachments import ALLOWED_TYPES, SHA256_PATTERN, SNIFFED_BYTES, clean_name
from services.complaints.evidence import AttachmentNotFound, Evidence, ReceivedFile
from services.complaints.schemas import AttachmentPublic, AttachmentVerification
from shared.auth import Caller
from shared.errors import ServiceError
from shared.openapi import error_responses

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

router = APIRouter(prefix="/api/v1", tags=["attachments"])

UPLOAD_PATH = "/api/v1/attachments"
# Room for the multipart framing around the file (boundaries, part headers, other small fields).
MULTIPART_OVERHEAD = 64 * 1024
MAX_PART_HEADER_BYTES = 8 * 1024

AttachmentId = Annotated[
    str, PathParam(pattern=SHA256_PATTERN, description="The attachment's id: the SHA-256 of its bytes, in hex.")
]


class TooLarge(ServiceError):
    status_code = 413
    error_type = "too_large"
    field = ("body", "file")
    # The rest of the body is not read: the connection is closed after the answer rather than drained.
    headers: ClassVar[dict[str, str]] = {"Connection": "close"}


class NotMultipart(ServiceError):
    status_code = 415
    error_type = "unsupported_type"
    field = ("header", "content-type")


class BadUpload(ServiceError):
    status_code = 422
    error_type = "bad_upload"
    field = ("body", "file")


class UploadAbandoned(ServiceError):
    status_code = 400
    error_type = "incomplete"
    field = ("body",)


def evidence(request: Request) -> Evidence:
    found: Evidence = request.app.state.evidence
    return found


class FilePart:
    """Callbacks of the multipart parser: the part named `file` goes to `spool`, hashed as it goes."""

    def __init__(self, spool: Any, max_bytes: int) -> None:
        self.spool = spool
        self.max_bytes = max_bytes
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = bytearray()
        self.name: str | None = None
        self.found = False
        self._in_file = False
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._header_bytes = 0

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._header_bytes = {}, 0

    def _count_header(self, length: int) -> None:
        self._header_bytes += length
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise BadUpload(f"a part's headers are longer than {MAX_PART_HEADER_BYTES} bytes", ("body",))

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field, self._value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if options.get(b"name") == b"file" and not self.found:
            self.found = self._in_file = True
            filename = options.get(b"filename")
            self.name = filename.decode("utf-8", errors="replace") if filename is not None else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return
        chunk = data[start:end]
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise TooLarge(f"the file is larger than {self.max_bytes} bytes")
        self.digest.update(chunk)
        if len(self.head) < SNIFFED_BYTES:
            self.head += chunk[: SNIFFED_BYTES - len(self.head)]
        self.spool.write(chunk)

    def _part_end(self) -> None:
        self._in_file = False


@contextlib.asynccontextmanager
async def received_file(request: Request, max_bytes: int) -> AsyncIterator[ReceivedFile]:
    """The request's file part, spooled to a temporary file that is removed afterwards."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise NotMultipart("send the file as multipart/form-data, in a part named 'file'")
    body_limit = max_bytes + MULTIPART_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > body_limit:
        raise TooLarge(f"the file is larger than {max_bytes} bytes")
    descriptor, name = tempfile.mkstemp(prefix="upload-")
    path = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as spool:
            part = FilePart(spool, max_bytes)
            parser = MultipartParser(boundary, part.callbacks())
            read = 0
            try:
                async for chunk in request.stream():
                    read += len(chunk)
                    if read > body_limit:
                        raise TooLarge(f"the file is larger than {max_bytes} bytes")
                    parser.write(chunk)
                parser.finalize()
            except MultipartParseError as malformed:
                raise BadUpload(f"malformed multipart body: {malformed}", ("body",)) from None
            except ClientDisconnect:
                raise UploadAbandoned("the upload ended before its body did") from None
        if not part.found:
            raise BadUpload("no part named 'file'")
        yield ReceivedFile(path, part.digest.hexdigest(), part.size, bytes(part.head), clean_name(part.name))
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


@router.post(
    "/attachments",
    status_code=status.HTTP_201_CREATED,
    response_model=AttachmentPublic,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
    responses=error_responses(
        e413="The file is over the cap.",
        e415="Not an allowed type.",
        e422="Not a multipart body with one part `file`.",
    ),
)
async def upload_attachment(request: Request, caller: Caller) -> AttachmentPublic:
    """Uploads one file (part `file`): an image (PNG, JPEG, GIF, WebP), a PDF, or a call recording (WAV, MP3,
    AMR, M4A, OGG), told by its bytes. Its id is the SHA-256 of its bytes; the same bytes uploaded again are the
    same attachment. Steps refer to it by id (`attachments`); one that none refers to is deleted after the
    retention policy's hours."""
    ACCESS.require(caller, "attachment.upload")
    async with received_file(request, request.app.state.attachments_max_bytes) as received:
        ref = await asyncio.to_thread(evidence(request).keep, received, caller)
    return AttachmentPublic.of(ref)


@router.get(
    "/attachments/{attachment_id}",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {content_type: {} for content_type in sorted(set(ALLOWED_TYPES.values()))},
            "description": "The file's bytes, with the type told from them at upload.",
        }
    },
)
async def download_attachment(attachment_id: AttachmentId, request: Request, caller: Caller) -> StreamingResponse:
    """The file as uploaded, to a caller who sees a unit that uploaded it, or the hall of a complaint or
    rectification order that refers to it; 404 otherwise, as if it did not exist."""
    found = evidence(request)
    ref = await asyncio.to_thread(found.readable, attachment_id, caller)
    try:
        size, chunks = await found.blobs.open(attachment_id)
    except FileNotFoundError:
        raise AttachmentNotFound(f"the bytes of attachment {attachment_id} are no longer stored") from None
    disposition = f"attachment; filename*=UTF-8''{quote(ref.name, safe='')}"
    headers = {
        "Content-Length": str(size),
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "ETag": f'"{attachment_id}"',
    }
    return StreamingResponse(chunks, media_type=ref.content_type, headers=headers)


@router.get("/attachments/{attachment_id}/verify", response_model=AttachmentVerification)
async def verify_attachment(attachment_id: AttachmentId, request: Request, caller: Caller) -> AttachmentVerification:
    """Hashes the stored bytes again: `intact` if they still are the bytes the id is the digest of (a file
    altered in storage is not)."""
    verification = await asyncio.to_thread(evidence(request).verify, attachment_id, caller)
    return AttachmentVerification(
        id=verification.id,
        intact=verification.intact,
        sha256_now=verification.sha256_now,
        size_now=verification.size_now,
    )
