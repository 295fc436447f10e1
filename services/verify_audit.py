"""`python -m services.verify_audit` (`make verify-audit`; a daily CronJob in Kubernetes): recomputes the
hash chain of every event store (`shared/audit_chain.py`) and prints each break with its position.

Exit status 1 if any is broken, so a failed Job is the alert. A clean store gets an anchor of its chain
heads (unless `--no-anchor`), which later runs check, so its newest events cannot be rewritten unseen.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

import asyncpg

from shared import audit_chain
from shared.settings import ServiceSettings


async def verify_all(database_url: str, anchor: bool) -> int:
    connection = await asyncpg.connect(database_url)
    broken = 0
    try:
        if anchor:
            await connection.execute(audit_chain.ANCHORS_DDL)
        for schema, table in audit_chain.EVENT_STORES.items():
            if await connection.fetchval("SELECT to_regclass($1)", f"{schema}.event_hashes") is None:
                print(f"{schema}: no chained event store ({schema}.{table}) yet")
                continue
            verification = await audit_chain.verify(connection, schema)
            print(
                f"{schema}: {verification.events} events of {verification.aggregates} aggregates,"
                f" up to notification {verification.newest_notification_id};"
                f" heads digest {verification.heads_digest.hex()}"
            )
            for problem in verification.breaks:
                print(f"BROKEN {problem}")
            broken += len(verification.breaks)
            if anchor:
                await audit_chain.anchor(connection, verification, datetime.now(UTC))
    finally:
        await connection.close()
    print(f"{broken} breaks" if broken else "every chain is whole")
    return 1 if broken else 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.verify_audit", description=__doc__)
    parser.add_argument("--no-anchor", action="store_true", help="verify only; record no anchor")
    arguments = parser.parse_args()
    sys.exit(asyncio.run(verify_all(str(ServiceSettings().database_url), anchor=not arguments.no_anchor)))


if __name__ == "__main__":
    main()
