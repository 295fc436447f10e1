"""Where services get the time: the system clock, or one that tests can move forward."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]
# The operator's time: business hours, complaint numbers and scoring periods are China-time days and months.
CHINA_TIME = ZoneInfo("Asia/Shanghai")


def system_clock() -> datetime:
    return datetime.now(UTC)


class MovableClock:
    """The system time plus an offset in seconds read from a file, so a test can move a running service's time.

    Only for tests and demonstrations: services refuse it in production.
    """

    def __init__(self, offset_file: Path) -> None:
        self.offset_file = offset_file
        self._read_version: tuple[int, int] | None = None
        self._offset = timedelta()

    def __call__(self) -> datetime:
        try:
            status = os.stat(self.offset_file)
        except FileNotFoundError:
            return system_clock()
        # Each move replaces the file, so a new inode says it changed even within one mtime tick.
        version = (status.st_ino, status.st_mtime_ns)
        if version != self._read_version:
            self._offset = timedelta(seconds=float(self.offset_file.read_text() or 0))
            self._read_version = version
        return system_clock() + self._offset

    @staticmethod
    def move_to(offset_file: Path, instant: datetime) -> None:
        """Sets the offset so that the clock now reads `instant`; written atomically."""
        offset = (instant - system_clock()).total_seconds()
        staging = offset_file.with_suffix(".tmp")
        staging.write_text(repr(offset))
        staging.replace(offset_file)


def period_of(instant: datetime) -> str:
    """The period (calendar month, China time) an instant falls in, e.g. "2026-11": scoring's and the reports'."""
    local = instant.astimezone(CHINA_TIME)
    return f"{local.year:04}-{local.month:02}"  # not strftime: it does not pad years before 1000


def months_between(first: datetime, second: datetime) -> set[str]:
    """The periods (months, China time) from the earlier instant's to the later's, both included."""
    low, high = sorted((first.astimezone(CHINA_TIME), second.astimezone(CHINA_TIME)))
    months, year, month = set(), low.year, low.month
    while (year, month) <= (high.year, high.month):
        months.add(f"{year:04}-{month:02}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months
