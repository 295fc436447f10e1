"""Operator commands: `python -m services.projections rebuild [--keep]`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.projections.rebuild import REBUILD_SCHEMA, rebuild
from shared.progress import event_progress
from shared.settings import ServiceSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.projections")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "rebuild", help="rebuild every read model from zero beside the live one and compare the two"
    )
    command.add_argument("--keep", action="store_true", help=f"keep the rebuilt schema {REBUILD_SCHEMA} to inspect")
    arguments = parser.parse_args()
    settings = ServiceSettings()
    with event_progress("rebuilding") as progress:
        report = asyncio.run(
            rebuild(
                str(settings.database_url), settings.kafka_bootstrap_servers, keep=arguments.keep, progress=progress
            )
        )
    print("\n".join(report.lines()))
    sys.exit(0 if report.identical else 1)


if __name__ == "__main__":
    main()
