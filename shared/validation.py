"""What any request to any service may carry, decided here once.

- Numbers are finite: NaN and Infinity (which Python's JSON parser accepts) cannot be stored,
  scored or written back as JSON.
- Instants lie in the years 2000–2100 (as written, in their own offset): near year 1 or 9999
  converting to UTC or to PostgreSQL overflows, and no complaint, deadline or period is that far out.
- Text holds no control character except tab, line feed and carriage return (so free text keeps
  its lines and indentation), and no lone surrogate. PostgreSQL text cannot hold NUL, so a NUL
  accepted at the door would be dead-lettered by the projections and vanish from the read models;
  the other controls and surrogates are not text anyone typed, and surrogates cannot be encoded.

Request bodies get every rule by deriving from `RequestModel`; path, query and header parameters
by being typed `TextParam` or `Instant`. Both call the same checks below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints, field_validator

FIRST_YEAR, LAST_YEAR = 2000, 2100
# C0 controls but tab, LF and CR; DEL; C1 controls; the surrogate range (never text on its own).
FORBIDDEN_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Longer than any code, unit path, cursor or complaint number a parameter carries.
MAX_PARAM_LENGTH = 500


def check_text(value: str) -> str:
    if (found := FORBIDDEN_CHARACTER.search(value)) is not None:
        raise ValueError(
            f"control character U+{ord(found.group()):04X} at position {found.start()} is not allowed"
            " (only tab, line feed and carriage return are)"
        )
    return value


def check_instant(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"year {value.year} is outside {FIRST_YEAR}–{LAST_YEAR}")
    return value


def check_value(value: Any) -> Any:
    """Applies the text and instant rules to a validated field, inside lists and mappings too.

    Nested request models are left alone: they check their own fields.
    """
    if isinstance(value, str):
        return check_text(value)
    if isinstance(value, datetime):
        return check_instant(value)
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_value(key)
            check_value(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            check_value(item)
    return value


class RequestModel(BaseModel):
    """Base of every request body: unknown fields, non-finite numbers, control characters and
    instants out of range are a 422 naming the field."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _safe(cls, value: Any) -> Any:
        return check_value(value)


TextParam = Annotated[str, StringConstraints(max_length=MAX_PARAM_LENGTH), AfterValidator(check_text)]
Instant = Annotated[AwareDatetime, AfterValidator(check_instant)]
