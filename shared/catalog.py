"""The vocabulary every service agrees on: channels, categories, priorities and pause reasons, as versioned data
files in `catalogs/`.

A value, once in the catalogue, stays in every later version (the loader refuses a version that drops one):
events published with it must stay readable, and the newest version accepts everything an older one did. So
requests are checked against the newest version, whatever the instant.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema

from shared.versioned import load_version

CATALOG_DIR = Path(__file__).parent / "catalogs"


class InvalidCatalog(ValueError):
    pass


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    effective_from: AwareDatetime
    source: str
    channels: list[str] = Field(min_length=1)
    categories: list[str] = Field(min_length=1)
    priorities: list[str] = Field(min_length=1)  # lowest first: lowering one needs a unit above the hall
    pause_reasons: dict[str, str] = Field(min_length=1)  # code: what the complaint waits for

    def values(self, kind: str) -> list[str]:
        return list(self.pause_reasons) if kind == "pause_reasons" else list(getattr(self, kind))


KINDS = ("channels", "categories", "priorities", "pause_reasons")


def load_catalogs(directory: Path = CATALOG_DIR) -> list[Catalog]:
    """Every version, oldest effective date first; refused if a version drops a value an older one had."""
    catalogs = sorted(
        (load_version(path, Catalog, InvalidCatalog) for path in directory.glob("*.json")),
        key=lambda catalog: catalog.effective_from,
    )
    if not catalogs:
        raise InvalidCatalog(f"no catalogue in {directory}")
    for older, newer in itertools.pairwise(catalogs):
        for kind in KINDS:
            dropped = sorted(set(older.values(kind)) - set(newer.values(kind)))
            if dropped:
                raise InvalidCatalog(f"{newer.version}.json: drops {kind} {', '.join(dropped)} of {older.version}")
    return catalogs


@functools.cache
def catalog() -> Catalog:
    """The newest version, which holds every value ever in use."""
    return load_catalogs()[-1]


def _member_of(kind: str, singular: str) -> AfterValidator:
    def check(value: str) -> str:
        known = catalog().values(kind)
        if value not in known:
            raise ValueError(f"unknown {singular} {value!r}: one of {', '.join(known)}")
        return value

    return AfterValidator(check)


def _schema(kind: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": catalog().values(kind)})


Channel = Annotated[str, _member_of("channels", "channel"), _schema("channels")]
Category = Annotated[str, _member_of("categories", "category"), _schema("categories")]
Priority = Annotated[str, _member_of("priorities", "priority"), _schema("priorities")]
PauseReason = Annotated[str, _member_of("pause_reasons", "pause reason"), _schema("pause_reasons")]
