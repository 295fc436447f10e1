"""Policies kept as versioned data files: one file per version, named after it, each effective from a date."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from shared.contracts import describe_validation_error


class Versioned(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def effective_from(self) -> datetime: ...


Document = TypeVar("Document", bound=BaseModel)
Version = TypeVar("Version", bound=Versioned)


def load_version(path: Path, model: type[Document], invalid: type[ValueError]) -> Document:
    """The file's document, refused as `invalid` with the bad entry named, or if it declares another version."""
    try:
        document = model.model_validate_json(path.read_text())
    except ValidationError as error:
        raise invalid(f"{path.name}: {describe_validation_error(error)}") from None
    version = getattr(document, "version", None)
    if version != path.stem:
        raise invalid(f"{path.name}: declares version {version!r}")
    return document


def in_force_at(versions: Iterable[Version], instant: datetime, invalid: type[ValueError], what: str) -> Version:
    """The version in force at `instant`: the latest one effective at or before it."""
    in_force = [version for version in versions if version.effective_from <= instant]
    if not in_force:
        raise invalid(f"no {what} was in force at {instant.isoformat()}")
    return max(in_force, key=lambda version: version.effective_from)
