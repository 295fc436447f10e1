"""Operator commands: `python -m services.complaints republish --from-position N`."""

from __future__ import annotations

import argparse
import asyncio

from services.complaints.main import RELAY_NAME, SCHEMA, ComplaintsSettings
from shared.database import create_pool
from shared.relay import RelayPositions


async def republish(from_position: int) -> None:
    """Moves the relay back so every event after `from_position` is published again."""
    pool = await create_pool(str(ComplaintsSettings().database_url), SCHEMA, max_size=1)
    try:
        positions = RelayPositions(pool)
        await positions.create_tables()
        await positions.rewind(RELAY_NAME, from_position)
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.complaints")
    commands = parser.add_subparsers(dest="command", required=True)
    rewind = commands.add_parser("republish", help="publish stored events again, from a position")
    rewind.add_argument("--from-position", type=int, default=0, help="republish events after this position")
    arguments = parser.parse_args()
    if arguments.from_position < 0:
        parser.error("--from-position must be 0 or more")
    asyncio.run(republish(arguments.from_position))
    print(f"relay {RELAY_NAME} will republish every event after position {arguments.from_position}")


if __name__ == "__main__":
    main()
