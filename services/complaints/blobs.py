"""Where attachments' bytes are kept: one interface over obstore, on the local filesystem (`LocalStore`, the
default) or S3-compatible object storage (`S3Store`, in production), chosen by the settings."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import LocalStore, S3Store
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.complaints.attachments import blob_path
from shared.errors import ServiceError

if TYPE_CHECKING:
    from obstore.store import ObjectStore

READ_CHUNK = 1024 * 1024


class StorageUnavailable(ServiceError):
    status_code = 503
    error_type = "unavailable"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "5"}


class AttachmentsSettings(BaseSettings):
    """`ATTACHMENTS_*` environment variables: how large an upload may be, how long one nothing refers to is
    kept, and where the bytes go. The S3 credentials come from a Kubernetes Secret."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    attachments_max_bytes: int = Field(
        default=20 * 2**20, ge=1024, description="The largest file an upload may carry; beyond it, 413."
    )
    attachments_unlinked_hours: float = Field(
        default=24, gt=0, description="An upload no step refers to is deleted this many hours after it was made."
    )
    attachments_storage: Literal["local", "s3"] = Field(
        default="local", description="local: files under ATTACHMENTS_DIR; s3: S3-compatible object storage."
    )
    attachments_dir: Path | None = Field(default=None, description="Local storage; default DATA_DIR/attachments.")
    attachments_s3_bucket: str | None = None
    attachments_s3_endpoint: str | None = Field(
        default=None, description="An S3-compatible service's URL (MinIO, Ceph); unset: AWS's for the region."
    )
    attachments_s3_region: str | None = None
    attachments_s3_access_key_id: SecretStr | None = None
    attachments_s3_secret_access_key: SecretStr | None = None


def open_store(settings: AttachmentsSettings, data_dir: Path) -> ObjectStore:
    """Connects to nothing yet: obstore opens connections when first used."""
    if settings.attachments_storage == "local":
        return LocalStore(prefix=settings.attachments_dir or data_dir / "attachments", mkdir=True)
    if not settings.attachments_s3_bucket:
        raise ValueError("ATTACHMENTS_S3_BUCKET must be set with ATTACHMENTS_STORAGE=s3")
    secrets = {
        "access_key_id": settings.attachments_s3_access_key_id,
        "secret_access_key": settings.attachments_s3_secret_access_key,
    }
    config = {name: secret.get_secret_value() for name, secret in secrets.items() if secret is not None}
    if settings.attachments_s3_endpoint:
        config["endpoint"] = settings.attachments_s3_endpoint
    if settings.attachments_s3_region:
        config["region"] = settings.attachments_s3_region
    return S3Store(settings.attachments_s3_bucket, config=config)  # type: ignore[arg-type]  # S3Config's keys


class Blobs:
    """Content-addressed bytes: `put` under their digest, read back, re-hashed, deleted. Every storage failure
    but absence is `StorageUnavailable` (503), never a server error."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def put(self, sha256: str, file: Path) -> None:
        """Overwrites whatever is there: the same digest is the same bytes."""
        try:
            obstore.put(self.store, blob_path(sha256), file)
        except BaseError as error:
            raise StorageUnavailable(f"the attachment could not be stored: {type(error).__name__}") from None

    def delete(self, sha256: str) -> None:
        """Absent already counts as deleted."""
        try:
            obstore.delete(self.store, blob_path(sha256))
        except NotFoundError:
            return
        except BaseError as error:
            raise StorageUnavailable(f"the attachment could not be deleted: {type(error).__name__}") from None

    def chunks(self, sha256: str) -> Iterator[bytes]:
        """The stored bytes, a chunk at a time; `FileNotFoundError` if none are stored."""
        try:
            stored = obstore.get(self.store, blob_path(sha256))
            for chunk in stored.stream(min_chunk_size=READ_CHUNK):
                yield bytes(chunk)
        except NotFoundError:
            raise FileNotFoundError(sha256) from None
        except BaseError as error:
            raise StorageUnavailable(f"the attachment could not be read: {type(error).__name__}") from None

    async def open(self, sha256: str) -> tuple[int, AsyncIterator[bytes]]:
        """The stored bytes' size, and the bytes as they are read (for a download); `FileNotFoundError` if none
        are stored."""
        try:
            stored = await obstore.get_async(self.store, blob_path(sha256))
        except NotFoundError:
            raise FileNotFoundError(sha256) from None
        except BaseError as error:
            raise StorageUnavailable(f"the attachment could not be read: {type(error).__name__}") from None
        return stored.meta["size"], _as_bytes(stored.stream(min_chunk_size=READ_CHUNK))

    def digest_now(self, sha256: str) -> tuple[str, int] | None:
        """The SHA-256 and size of the bytes stored now under `sha256`; None if nothing is."""
        digest, size = hashlib.sha256(), 0
        try:
            for chunk in self.chunks(sha256):
                digest.update(chunk)
                size += len(chunk)
        except FileNotFoundError:
            return None
        return digest.hexdigest(), size


async def _as_bytes(stream: AsyncIterator[object]) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield bytes(chunk)  # type: ignore[call-overload]  # obstore's Bytes implement the buffer protocol
