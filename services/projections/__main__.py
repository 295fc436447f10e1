"""Operator commands: `python -m services.projections rebuild [--keep]`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from services.projections.rebuild import REBUILD_SCHEMA, rebuild
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
    columns = (TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, TextColumn("{task.fields[rate]}"), console=Console(stderr=True)) as shown:
        task = shown.add_task("events", total=None, rate="")
        started = time.monotonic()

        def progress(applied: int, total: int) -> None:
            rate = applied / max(time.monotonic() - started, 1e-3)
            shown.update(task, completed=applied, total=total, rate=f"{rate:,.0f} events/s")

        report = asyncio.run(
            rebuild(
                str(settings.database_url), settings.kafka_bootstrap_servers, keep=arguments.keep, progress=progress
            )
        )
    print("\n".join(report.lines()))
    sys.exit(0 if report.identical else 1)


if __name__ == "__main__":
    main()
