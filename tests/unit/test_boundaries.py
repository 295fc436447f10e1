"""Pure rules import no web framework, token library, driver or broker client; a service imports no other
service, so the scoring rules reach no service but scoring."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

INFRASTRUCTURE = ["fastapi", "starlette", "jwt", "asyncpg", "psycopg", "aiokafka", "faust"]
SERVICES = Path(__file__).parents[2] / "services"
SERVICE_NAMES = sorted(path.name for path in SERVICES.iterdir() if (path / "main.py").exists())


def modules_loaded_by(module: str) -> set[str]:
    """Every module loaded once `module` is imported, in a fresh interpreter."""
    probe = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    return set(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split())


@pytest.mark.parametrize(
    "module",
    [
        "shared.organisation",
        "services.escalation.clocks",
        "services.escalation.tracking",
        "services.scoring.scorecard",
        "services.scoring.grades",
    ],
)
def test_a_pure_module_loads_no_infrastructure(module: str) -> None:
    loaded = {name.split(".")[0] for name in modules_loaded_by(module)}
    assert loaded.isdisjoint(INFRASTRUCTURE), f"{module} loads {sorted(loaded & set(INFRASTRUCTURE))}"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_a_service_imports_no_other_service(service: str) -> None:
    """Another service's rules are consumed as its published verdicts and facts, never imported."""
    foreign = {
        f"{path.relative_to(SERVICES.parent)}: {name}"
        for path in (SERVICES / service).rglob("*.py")
        for name in imported_modules(path)
        if name.startswith("services.") and not name.startswith(f"services.{service}")
    }
    assert not foreign, sorted(foreign)


@pytest.mark.parametrize("service", [name for name in SERVICE_NAMES if name != "scoring"])
def test_no_other_service_loads_the_scoring_rules(service: str) -> None:
    """Not even through `shared`: the scores and grades are worked out by the scoring service alone."""
    loaded = modules_loaded_by(f"services.{service}.main")
    assert not {name for name in loaded if name == "services.scoring" or name.startswith("services.scoring.")}
