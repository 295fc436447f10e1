"""`python -m devstack`: runs the whole stack in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType

from devstack.stack import Stack, StackConfig


def main() -> int:
    data_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ".var").resolve()
    stack = Stack(StackConfig.from_environment(data_dir))

    def interrupt(_signal: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        stack.start()
        for note in stack.notes:
            print(f"note: {note}")
        print("\nReady:")
        for name, url in stack.urls().items():
            print(f"  {name:<12} {url}")
        token = stack.write_dev_token()
        print(f"Development admin token (whole group, 30 days): {token}")
        print(f'  curl -H "Authorization: Bearer $(cat {token})" {stack.services["complaints"].url}/api/v1/halls/...')
        print(f"Data in {data_dir}. Ctrl-C stops everything.\n", flush=True)
        while (exited := stack.first_exited()) is None:
            time.sleep(0.5)
        print(f"{exited.name} exited unexpectedly; stopping the stack", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping...")
        return 0
    finally:
        # A second Ctrl-C or SIGTERM (a supervisor's, or `timeout` passing one on) must not cut the stopping
        # short: it would leave PostgreSQL, the broker and the services running.
        for stopping in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stopping, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
