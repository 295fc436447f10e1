"""The organisation tree: group → province → city → hall, as every service names its units."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["group", "province", "city", "hall"]
_LEVELS: tuple[Level, ...] = ("group", "province", "city", "hall")


@dataclass(frozen=True)
class OrgUnit:
    """A node of group → province → city → hall; `path` is empty for the group itself."""

    path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.path) >= len(_LEVELS):
            raise ValueError(f"organisation unit {self} is deeper than group/province/city/hall")
        if not all(segment and "/" not in segment for segment in self.path):
            raise ValueError(f"organisation unit {self} has an empty segment or one containing '/'")

    @classmethod
    def parse(cls, text: str) -> OrgUnit:
        """`"group"` or `"group/广东/深圳/GD-SZ-001"`, as written by `str()`."""
        root, *below = text.split("/")
        if root != "group":
            raise ValueError(f"organisation unit {text!r} must start with 'group'")
        return cls(tuple(below))

    @classmethod
    def of_hall(cls, province: str, city: str, hall_id: str) -> OrgUnit:
        return cls((province, city, hall_id))

    @property
    def level(self) -> Level:
        return _LEVELS[len(self.path)]

    def contains(self, other: OrgUnit) -> bool:
        """True if `other` is this unit or below it."""
        return other.path[: len(self.path)] == self.path

    def __str__(self) -> str:
        return "/".join(("group", *self.path))
