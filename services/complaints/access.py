"""Who may take which action: the role-by-action matrix, versioned data in `access/` (README, "Who may do
what"). A new version is a new file; the newest applies. Whether the caller's unit owns the complaint, or
stands above its hall, is checked besides, by the use cases."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from shared.auth import Principal, Role, require_roles

ACCESS_DIR = Path(__file__).parent / "access"


class AccessMatrix(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    source: str
    actions: dict[str, frozenset[Role]]

    def require(self, caller: Principal, action: str) -> None:
        """Refuses (403) unless the caller has one of the roles the action needs."""
        require_roles(caller, *sorted(self.actions[action]))


def load_access_matrix(directory: Path = ACCESS_DIR) -> AccessMatrix:
    newest = max(directory.glob("*.json"), key=lambda path: path.stem)
    return AccessMatrix.model_validate_json(newest.read_text())


ACCESS = load_access_matrix()
