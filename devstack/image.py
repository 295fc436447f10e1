"""`python -m devstack.image` (`make image`): builds the services' image with buildah, rootless-friendly.

The Dockerfile's default base is the official python:3.11-slim image, pinned. Where it cannot be pulled (no
registry reachable, as on the development machines), a Debian bookworm base is made from Debian's own
packages with mmdebstrap (python3 3.11, venv, CA certificates) and imported as `BASE_IMAGE`. pip inside the
build reads this machine's pip configuration, package indexes and CA bundle, mounted read-only.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = "localhost/service-quality:dev"
BASE_IMAGE = "localhost/service-quality-base:bookworm"
OFFICIAL_BASE = "python:3.11.14-slim-bookworm"
BASE_PACKAGES = "python3,python3-venv,ca-certificates,passwd"
# What pip in the build reads from this machine, where it exists: its configuration, indexes and CA bundle.
PIP_FILES = (
    "/etc/pip.conf",
    "/etc/xdg/pip",
    "/root/.config/pip",
    "/opt/pypi",
    "/opt/pypi-more",
    "/opt/wheels",
    "/etc/ssl/certs/ca-certificates.crt",
)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, capture_output=True, text=True)


def image_exists(name: str) -> bool:
    return (
        subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True, check=False).returncode
        == 0
    )


def base_image() -> str:
    """The official base if it can be pulled, else a Debian one made here (once)."""
    if subprocess.run(["buildah", "pull", "-q", OFFICIAL_BASE], capture_output=True, check=False).returncode == 0:
        return ""  # the Dockerfile's own default
    if not image_exists(BASE_IMAGE):
        with tempfile.TemporaryDirectory() as scratch:
            tarball = Path(scratch) / "base.tar"
            run("mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(tarball))
            run("podman", "import", str(tarball), BASE_IMAGE)
    return BASE_IMAGE


def build(tag: str = IMAGE) -> float:
    """Builds the image; returns the seconds it took."""
    for tool in ("buildah", "podman", "mmdebstrap"):
        if shutil.which(tool) is None:
            raise SystemExit(f"`make image` needs Debian's {tool}: apt-get install -y buildah podman mmdebstrap")
    started = time.monotonic()
    base = base_image()
    command = ["buildah", "build", "--isolation", "chroot", "--network", "host", "--layers", "-t", tag]
    if base:
        command += ["--build-arg", f"BASE={base}"]
    for path in PIP_FILES:
        if Path(path).exists():
            command += ["--volume", f"{path}:{path}:ro"]
    command.append(str(REPO))
    subprocess.run(command, check=True)
    return time.monotonic() - started


def size_of(tag: str = IMAGE) -> int:
    return int(run("podman", "image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.image", description=__doc__)
    parser.add_argument("--tag", default=IMAGE)
    arguments = parser.parse_args()
    seconds = build(arguments.tag)
    print(f"built {arguments.tag} in {seconds:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
