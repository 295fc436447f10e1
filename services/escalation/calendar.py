"""Working time: China's statutory calendar with adjusted working days (调休), and business hours.

Years come from the `chinese-calendar` package unless a data file in `calendars/`
(`<year>.json`) defines them; a year known to neither is an error, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
from pydantic import BaseModel, ConfigDict

CHINA_TIME = ZoneInfo("Asia/Shanghai")
CALENDAR_DIR = Path(__file__).parent / "calendars"
# Searching further than this for a working day means the calendar data is wrong.
MAX_DAYS_WITHOUT_WORK = 60


class UnknownCalendarYear(LookupError):
    """No holiday data for this year: add `calendars/<year>.json`."""


class YearCalendar(BaseModel):
    """A year's exceptions to Monday–Friday: statutory holidays and adjusted working weekend days."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    year: int
    source: str
    holidays: frozenset[date]
    working_weekend_days: frozenset[date]


@dataclass(frozen=True)
class BusinessHours:
    opens: time = time(9)
    closes: time = time(18)

    def __post_init__(self) -> None:
        if self.opens >= self.closes:
            raise ValueError(f"business hours must open before they close: {self.opens}–{self.closes}")


def load_year_files(directory: Path = CALENDAR_DIR) -> dict[int, YearCalendar]:
    years = {}
    for path in sorted(directory.glob("*.json")):
        calendar = YearCalendar.model_validate(json.loads(path.read_text()))
        if str(calendar.year) != path.stem:
            raise ValueError(f"{path} declares year {calendar.year}")
        years[calendar.year] = calendar
    return years


class WorkingCalendar:
    def __init__(self, year_files: dict[int, YearCalendar] | None = None, hours: BusinessHours = BusinessHours()):
        self.year_files = load_year_files() if year_files is None else year_files
        self.hours = hours

    def is_working_day(self, day: date) -> bool:
        year_file = self.year_files.get(day.year)
        if year_file is not None:
            if day in year_file.holidays:
                return False
            return day.weekday() < 5 or day in year_file.working_weekend_days
        try:
            working: bool = chinese_calendar.is_workday(day)
        except NotImplementedError:
            raise UnknownCalendarYear(
                f"no holiday data for {day.year}: add services/escalation/calendars/{day.year}.json"
            ) from None
        return working

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The same time of day, `days` working days later (a start outside working time counts from the next)."""
        local = self._next_working_instant(start)
        day = local.date()
        for _ in range(days):
            day = self._next_working_day(day + timedelta(days=1))
        return datetime.combine(day, local.timetz())

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The instant when `amount` of business hours on working days has passed since `start`."""
        remaining = amount
        for opens, closes in self._windows(start):
            if remaining <= closes - opens:
                return opens + remaining
            remaining -= closes - opens
        raise AssertionError("windows never end")

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        total = timedelta()
        if end <= start:
            return total
        for opens, closes in self._windows(start):
            if opens >= end:
                break
            total += min(closes, end) - opens
        return total

    def _windows(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Business-hour windows on working days from `start` on; the first may begin mid-window."""
        local = start.astimezone(CHINA_TIME)
        day = local.date()
        while True:
            day = self._next_working_day(day)
            opens = datetime.combine(day, self.hours.opens, CHINA_TIME)
            closes = datetime.combine(day, self.hours.closes, CHINA_TIME)
            if closes > local:
                yield max(opens, local), closes
            day += timedelta(days=1)

    def _next_working_instant(self, start: datetime) -> datetime:
        opens, _ = next(self._windows(start))
        return opens

    def _next_working_day(self, day: date) -> date:
        for offset in range(MAX_DAYS_WITHOUT_WORK):
            candidate = day + timedelta(days=offset)
            if self.is_working_day(candidate):
                return candidate
        raise UnknownCalendarYear(f"no working day within {MAX_DAYS_WITHOUT_WORK} days of {day}")
