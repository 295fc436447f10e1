"""Inspection checklists: versioned data files in `checklists/`, one file per version, never edited."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

CHECKLIST_DIR = Path(__file__).parent / "checklists"


class ChecklistItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    text: str
    points: int = Field(gt=0)


class ChecklistSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    title: str
    items: list[ChecklistItem] = Field(min_length=1)


class Checklist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    source: str
    sections: list[ChecklistSection] = Field(min_length=1)

    def items(self) -> dict[str, ChecklistItem]:
        return {item.id: item for section in self.sections for item in section.items}


class UnknownChecklist(LookupError):
    pass


def versions() -> list[str]:
    return sorted(path.stem for path in CHECKLIST_DIR.glob("*.json"))


@cache
def load_checklist(version: str | None = None) -> Checklist:
    """The given version, or the newest one."""
    known = versions()
    version = version or known[-1]
    if version not in known:  # checked before it names a file: "../x" or 300 characters must not become a path
        raise UnknownChecklist(f"no checklist version {version[:100]!r}; known: {', '.join(known)}")
    path = CHECKLIST_DIR / f"{version}.json"
    checklist = Checklist.model_validate_json(path.read_text())
    if checklist.version != version:
        raise ValueError(f"{path} declares version {checklist.version!r}, its name says {version!r}")
    return checklist
