"""The organisation tree: group → province → city → hall, as every service names its units."""

from __future__ import annotations

import functools
import unicodedata
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
        for segment in self.path:
            if unit_name(segment) != segment:
                raise ValueError(f"organisation unit {self}: {segment!r} is not written as a unit name is")

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


# The escalation ladder: handler → hall manager (level 1) → city (2) → province (3) → group (4).
LADDER_LEVELS = 4


def escalation_target(hall: OrgUnit, level: int) -> OrgUnit | None:
    """The unit escalation level `level` of a hall's complaint reaches: 1 the hall (its manager), 2 the city,
    3 the province, 4 the group; none at level 0."""
    if level == 0:
        return None
    return OrgUnit(hall.path[: max(len(hall.path) - (level - 1), 0)])


def escalation_level(hall: OrgUnit, target: OrgUnit) -> int:
    """The level whose target is `target`, the hall or a unit above it (see `escalation_target`)."""
    if not target.contains(hall):
        raise ValueError(f"{target} is not {hall} nor a unit above it")
    return len(hall.path) - len(target.path) + 1


# Unicode categories no unit name may hold: controls, format characters (zero-width spaces and joiners,
# direction marks), surrogates, private use and unassigned; a look-alike of a unit must not be another.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


@functools.lru_cache(maxsize=4096)  # every unit built, one per milestone too, checks its names: few and repeated
def unit_name(text: str) -> str:
    """`text` as a unit name is kept: NFKC-normalised (full-width letters and digits as plain ones) and
    trimmed. Refuses (ValueError) an empty name, a '/', and invisible or control characters."""
    name = unicodedata.normalize("NFKC", text).strip()
    if not name or "/" in name:
        raise ValueError("a unit name is not empty and holds no '/'")
    if bad := next((c for c in name if unicodedata.category(c) in _INVISIBLE), None):
        raise ValueError(f"a unit name holds no invisible or control character, such as U+{ord(bad):04X}")
    return name
