"""Operator commands: `python -m services.complaints republish --from-position N [--no-follow]`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import asyncpg

from services.complaints.main import RELAY_NAME, SCHEMA, ComplaintsSettings
from services.complaints.repositories import newest_event_position
from shared.database import create_pool
from shared.migrations import RELAY, migrate_schema
from shared.progress import event_progress
from shared.relay import RelayPositions

STALLED_AFTER_SECONDS = 30.0  # no progress that long: the service is not running, or cannot publish


async def republish(from_position: int, follow: bool) -> None:
    """Moves the relay back so every event after `from_position` is published again; with `follow`, shows the
    relay publishing them until it has caught up (or stops moving)."""
    database_url = str(ComplaintsSettings().database_url)
    await migrate_schema(database_url, SCHEMA, [RELAY])
    pool = await create_pool(database_url, SCHEMA, max_size=1)
    try:
        positions = RelayPositions(pool)
        await positions.rewind(RELAY_NAME, from_position)
        print(f"relay {RELAY_NAME} will republish every event after position {from_position}")
        if follow:
            await _follow(pool, positions, from_position)
    finally:
        await pool.close()


async def _follow(pool: asyncpg.Pool, positions: RelayPositions, from_position: int) -> None:
    newest = await newest_event_position(pool)
    total = max(newest - from_position, 0)
    with event_progress("republishing") as show:
        show(0, total)
        moved_at = time.monotonic()
        last = from_position
        while (position := await positions.get(RELAY_NAME)) < newest:
            if position != last:
                last, moved_at = position, time.monotonic()
            elif time.monotonic() - moved_at > STALLED_AFTER_SECONDS:
                break
            show(max(position - from_position, 0), total)
            await asyncio.sleep(0.5)
        else:
            show(total, total)
            return
    print(f"the relay has not moved for {STALLED_AFTER_SECONDS:.0f} s: is the service up?", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.complaints")
    commands = parser.add_subparsers(dest="command", required=True)
    rewind = commands.add_parser("republish", help="publish stored events again, from a position")
    rewind.add_argument("--from-position", type=int, default=0, help="republish events after this position")
    rewind.add_argument("--no-follow", action="store_true", help="rewind only; do not show the relay catching up")
    arguments = parser.parse_args()
    if arguments.from_position < 0:
        parser.error("--from-position must be 0 or more")
    asyncio.run(republish(arguments.from_position, follow=not arguments.no_follow))


if __name__ == "__main__":
    main()
