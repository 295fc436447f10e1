"""Pure rules import no web framework, token library, driver or broker client."""

from __future__ import annotations

import subprocess
import sys

import pytest

INFRASTRUCTURE = ["fastapi", "starlette", "jwt", "asyncpg", "psycopg", "aiokafka", "faust"]


@pytest.mark.parametrize(
    "module", ["shared.organisation", "services.escalation.clocks", "services.escalation.tracking", "shared.scorecard"]
)
def test_a_pure_module_loads_no_infrastructure(module: str) -> None:
    probe = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    loaded = set(
        subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    )
    assert loaded.isdisjoint(INFRASTRUCTURE), f"{module} loads {sorted(loaded & set(INFRASTRUCTURE))}"
