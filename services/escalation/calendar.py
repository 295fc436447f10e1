"""Working time: China's statutory calendar with adjusted working days (调休), and business hours.

Years come from the `chinese-calendar` package unless a data file in `calendars/`
(`<year>.json`) defines them. A year known to neither is an error, unless the calendar
is told to assume Monday to Friday for it; then `knows_year` flags every result that
relied on the guess.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import chinese_calendar
from pydantic import BaseModel, ConfigDict

from shared.clock import CHINA_TIME
from shared.organisation import OrgUnit

CALENDAR_DIR = Path(__file__).parent / "calendars"
BUSINESS_HOURS_FILE = Path(__file__).parent / "business_hours.json"
# Searching further than this for a working day means the calendar data is wrong.
MAX_DAYS_WITHOUT_WORK = 60
WORKING_TIME_SUMS_KEPT = 20_000  # about 12 per open subject: a bound on memory, not a working set


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
    def __init__(
        self,
        year_files: dict[int, YearCalendar] | None = None,
        hours: BusinessHours = BusinessHours(),
        assume_weekdays_in_unknown_years: bool = False,
    ):
        self.year_files = load_year_files() if year_files is None else year_files
        self.hours = hours
        self.assume_weekdays_in_unknown_years = assume_weekdays_in_unknown_years
        # chinese-calendar validates every date it is asked about, which dominated deadline arithmetic.
        self._working_days: dict[date, bool] = {}
        # A subject's milestones are planned again at each step it takes, from the same starts.
        self._after_working_time: dict[tuple[datetime, timedelta], datetime] = {}
        # Every sum walks the windows of the days after its start: each day's is worked out once (a few
        # hundred days a year, so kept without bound).
        self._first_windows: dict[date, tuple[date, datetime, datetime]] = {}

    def knows_year(self, year: int) -> bool:
        if year in self.year_files:
            return True
        try:
            chinese_calendar.is_workday(date(year, 1, 1))
        except NotImplementedError:
            return False
        return True

    @property
    def working_day(self) -> timedelta:
        """One day of business hours: what a limit of one working day means in working time."""
        return datetime.combine(date.min, self.hours.closes) - datetime.combine(date.min, self.hours.opens)

    def is_working_day(self, day: date) -> bool:
        known = self._working_days.get(day)
        if known is None:
            known = self._working_days[day] = self._is_working_day(day)
        return known

    def _is_working_day(self, day: date) -> bool:
        year_file = self.year_files.get(day.year)
        if year_file is not None:
            if day in year_file.holidays:
                return False
            return day.weekday() < 5 or day in year_file.working_weekend_days
        try:
            working: bool = chinese_calendar.is_workday(day)
        except NotImplementedError:
            if self.assume_weekdays_in_unknown_years:
                return day.weekday() < 5
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
        key = (start, amount)
        instant = self._after_working_time.get(key)
        if instant is None:
            if len(self._after_working_time) >= WORKING_TIME_SUMS_KEPT:
                self._after_working_time.clear()
            instant = self._after_working_time[key] = self._add_working_time(start, amount)
        return instant

    def _add_working_time(self, start: datetime, amount: timedelta) -> datetime:
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
            day, opens, closes = self._window_from(day)
            if closes > local:
                yield max(opens, local), closes
            day += timedelta(days=1)

    def _window_from(self, day: date) -> tuple[date, datetime, datetime]:
        """The first working day from `day` on, and its business hours."""
        window = self._first_windows.get(day)
        if window is None:
            working = self._next_working_day(day)
            opens = datetime.combine(working, self.hours.opens, CHINA_TIME)
            window = self._first_windows[day] = (
                working,
                opens,
                datetime.combine(working, self.hours.closes, CHINA_TIME),
            )
        return window

    def _next_working_instant(self, start: datetime) -> datetime:
        opens, _ = next(self._windows(start))
        return opens

    def _next_working_day(self, day: date) -> date:
        for offset in range(MAX_DAYS_WITHOUT_WORK):
            candidate = day + timedelta(days=offset)
            if self.is_working_day(candidate):
                return candidate
        raise UnknownCalendarYear(f"no working day within {MAX_DAYS_WITHOUT_WORK} days of {day}")


class HoursEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    opens: time
    closes: time

    def hours(self) -> BusinessHours:
        return BusinessHours(self.opens, self.closes)


class BusinessHoursFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    default: HoursEntry
    units: dict[str, HoursEntry]


class Calendars:
    """One working calendar per organisation unit with its own hours; the nearest ancestor's otherwise."""

    def __init__(
        self,
        path: Path = BUSINESS_HOURS_FILE,
        year_files: dict[int, YearCalendar] | None = None,
        assume_weekdays_in_unknown_years: bool = False,
    ) -> None:
        config = BusinessHoursFile.model_validate_json(path.read_text())
        years = load_year_files() if year_files is None else year_files
        self.default = WorkingCalendar(years, config.default.hours(), assume_weekdays_in_unknown_years)
        self.by_unit = {
            OrgUnit.parse(unit): WorkingCalendar(years, entry.hours(), assume_weekdays_in_unknown_years)
            for unit, entry in config.units.items()
        }
        self.version = calendar_version(config, years)

    def for_unit(self, unit: OrgUnit | None) -> WorkingCalendar:
        if unit is None:
            return self.default
        owners = [owner for owner in self.by_unit if owner.contains(unit)]
        return self.by_unit[max(owners, key=lambda owner: len(owner.path))] if owners else self.default


def calendar_version(hours: BusinessHoursFile, years: dict[int, YearCalendar]) -> str:
    """Changes whenever any input to working time changes: hours, year files or the holiday package."""
    content = json.dumps(
        {
            "hours": hours.model_dump(mode="json"),
            "years": {
                year: {
                    "holidays": sorted(map(str, calendar.holidays)),
                    "working_weekend_days": sorted(map(str, calendar.working_weekend_days)),
                }
                for year, calendar in years.items()
            },
            "chinese_calendar": chinese_calendar.__version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(content.encode()).hexdigest()[:12]
