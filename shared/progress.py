"""The progress bar of the operator commands (`make rebuild`, `make republish`): on stderr, events done of how
many, the share, the time taken and the rate."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

Show = Callable[[int, int], None]  # events done, of how many


@contextlib.contextmanager
def event_progress(label: str) -> Iterator[Show]:
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, TextColumn("{task.fields[rate]}"), console=Console(stderr=True)) as shown:
        task = shown.add_task("events", total=None, rate="")
        started = time.monotonic()

        def show(done: int, total: int) -> None:
            rate = done / max(time.monotonic() - started, 1e-3)
            shown.update(task, completed=done, total=total, rate=f"{rate:,.0f} events/s")

        yield show
