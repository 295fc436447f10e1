"""The monthly report (月度分析报告 / 通报) of a scope: per hall and per city, what the month's facts say.

Worked out from the facts the scorecards applied (`read_model.score_changes`), the same facts the
scores and grades come from, so the report and the grade cannot disagree; the grades are those of
`standings`, this month's against last month's, ranked in the report's scope.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from services.scoring import read_model, standings, tables
from services.scoring.attribution import AttributionLine, lines_of
from services.scoring.policy import ScoringPolicy, period_start
from services.scoring.scorecard import PeriodFacts
from services.scoring.tables import cell
from shared.organisation import OrgUnit

ON_TIME_TARGET = 1.0  # the seeds: on-time replies to complaints and appeals are expected to be 100%
GRADE_ORDER = ("below", "meets", "good", "excellent")


class ReportLine(BaseModel):
    """One hall's month, or one city's (its halls together)."""

    province: str
    city: str
    hall_id: str | None  # None: the city's line
    complaints: int
    by_channel: dict[str, int]
    by_category: dict[str, int]
    first_responses_decided: int
    first_responses_on_time: int
    on_time_share: float | None  # against the target of 100%
    closed: int
    resolved_within_limit: int  # closed without the resolution clock breaching
    satisfaction: dict[str, dict[str, int]]  # by source, then level
    inspections_by_type: dict[str, int]
    findings_by_item: dict[str, int]
    overdue_orders: int
    rejected_reports: int
    highlights: int
    highlight_points: float
    score: float | None  # None on a city's line
    grade: str | None
    last_grade: str | None
    movement: str | None  # up, down, same, new (no grade last month) or None (no grade now)


class MonthlyReport(BaseModel):
    period: str
    scope: str
    policy_version: str
    on_time_target: float
    cities: list[ReportLine]
    halls: list[ReportLine]
    attribution: list[AttributionLine]  # the complaints the halls did not bear, by who did


def previous_month(period: str) -> str:
    start = period_start(period)
    return f"{start.year - 1}-12" if start.month == 1 else f"{start.year}-{start.month - 1:02}"


async def monthly_report(
    pool: asyncpg.Pool, policies: dict[str, ScoringPolicy], period: str, scope: OrgUnit, as_of: datetime | None
) -> MonthlyReport:
    now = await standings.grades(pool, policies, period, scope, as_of)
    try:
        last = await standings.grades(pool, policies, previous_month(period), scope, as_of)
    except standings.NoScoringPolicy:  # the first month any policy covers
        last = None
    before = {hall.hall_id: hall.grade for hall in last.halls} if last else {}
    graded = {hall.hall_id: hall for hall in now.halls}
    units = await read_model.units_of(pool, list(graded))
    replayed = [
        (hall.hall_id, PeriodFacts.of(hall.facts))
        for hall in await read_model.facts_of_period(pool, period, scope, as_of)
    ]
    halls = []
    for hall_id, facts in replayed:
        province, city = units[hall_id]
        standing = graded[hall_id]
        line = _line(province, city, hall_id, facts, standing.score)
        halls.append(line.model_copy(update=_grades(standing.grade, before.get(hall_id))))
    halls.sort(key=lambda line: (line.province, line.city, line.hall_id or ""))
    cities = [
        _city_line(province, city, [line for line in halls if (line.province, line.city) == (province, city)])
        for province, city in sorted({(line.province, line.city) for line in halls})
    ]
    return MonthlyReport(
        period=period,
        scope=str(scope),
        policy_version=now.policy_version,
        on_time_target=ON_TIME_TARGET,
        cities=cities,
        halls=halls,
        attribution=lines_of([(standings.policy_for(policies, period), replayed)]),
    )


def _line(province: str, city: str, hall_id: str, facts: PeriodFacts, score: float) -> ReportLine:
    complaints = [c for c in facts.complaints.values() if c.registered]
    decided = [c for c in complaints if c.responded or c.response_breached]
    on_time = sum(not c.response_breached for c in decided)
    satisfaction: dict[str, Counter[str]] = {}
    for complaint in complaints:
        for source, level in complaint.satisfaction.items():
            satisfaction.setdefault(source, Counter())[level] += 1
    inspections = facts.inspections.values()
    findings = facts.findings.values()
    return ReportLine(
        province=province,
        city=city,
        hall_id=hall_id,
        complaints=len(complaints),
        by_channel=_counted(c.channel for c in complaints),
        by_category=_counted(c.category or "unrecorded" for c in complaints),
        first_responses_decided=len(decided),
        first_responses_on_time=on_time,
        on_time_share=round(on_time / len(decided), 4) if decided else None,
        closed=sum(c.closed for c in complaints),
        resolved_within_limit=sum(c.closed and not c.resolution_breached for c in complaints),
        satisfaction={source: dict(sorted(levels.items())) for source, levels in sorted(satisfaction.items())},
        inspections_by_type=_counted(i.inspection_type or "unrecorded" for i in inspections),
        findings_by_item=_counted(f.item_id or "unrecorded" for f in findings if f.points),
        overdue_orders=sum(f.overdue for f in findings),
        rejected_reports=sum(f.rejections for f in findings),
        highlights=sum(i.highlights for i in inspections),
        highlight_points=round(sum(i.bonus for i in inspections), 2),
        score=score,
        grade=None,
        last_grade=None,
        movement=None,
    )


def _grades(grade: str | None, last: str | None) -> dict[str, str | None]:
    if grade is None:
        movement = None
    elif last is None:
        movement = "new"
    else:
        change = GRADE_ORDER.index(grade) - GRADE_ORDER.index(last)
        movement = "up" if change > 0 else "down" if change < 0 else "same"
    return {"grade": grade, "last_grade": last, "movement": movement}


def _city_line(province: str, city: str, halls: list[ReportLine]) -> ReportLine:
    decided = sum(line.first_responses_decided for line in halls)
    on_time = sum(line.first_responses_on_time for line in halls)
    satisfaction: dict[str, Counter[str]] = {}
    for line in halls:
        for source, levels in line.satisfaction.items():
            satisfaction.setdefault(source, Counter()).update(levels)
    return ReportLine(
        province=province,
        city=city,
        hall_id=None,
        complaints=sum(line.complaints for line in halls),
        by_channel=_summed(line.by_channel for line in halls),
        by_category=_summed(line.by_category for line in halls),
        first_responses_decided=decided,
        first_responses_on_time=on_time,
        on_time_share=round(on_time / decided, 4) if decided else None,
        closed=sum(line.closed for line in halls),
        resolved_within_limit=sum(line.resolved_within_limit for line in halls),
        satisfaction={source: dict(sorted(levels.items())) for source, levels in sorted(satisfaction.items())},
        inspections_by_type=_summed(line.inspections_by_type for line in halls),
        findings_by_item=_summed(line.findings_by_item for line in halls),
        overdue_orders=sum(line.overdue_orders for line in halls),
        rejected_reports=sum(line.rejected_reports for line in halls),
        highlights=sum(line.highlights for line in halls),
        highlight_points=round(sum(line.highlight_points for line in halls), 2),
        score=None,
        grade=None,
        last_grade=None,
        movement=_movements(halls),
    )


def _movements(halls: list[ReportLine]) -> str | None:
    """A city's grade movement: how many of its halls went up and down, e.g. "up 2, down 1"."""
    moved = Counter(line.movement for line in halls if line.movement in ("up", "down"))
    return ", ".join(f"{way} {moved[way]}" for way in ("up", "down") if moved[way]) or None


def _counted(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def _summed(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for count in counts:
        total.update(count)
    return dict(sorted(total.items()))


# The spreadsheet columns: one per figure; the breakdowns as `key: n; key: n`.
COLUMNS = (
    "province",
    "city",
    "hall_id",
    "complaints",
    "by_channel",
    "by_category",
    "first_responses_decided",
    "first_responses_on_time",
    "on_time_share",
    "closed",
    "resolved_within_limit",
    "satisfaction",
    "inspections_by_type",
    "findings_by_item",
    "overdue_orders",
    "rejected_reports",
    "highlights",
    "highlight_points",
    "score",
    "grade",
    "last_grade",
    "movement",
)
ATTRIBUTION_COLUMNS = ("bearer", "responsible_unit", "root_cause_class", "complaints", "substantiated", "halls")


def rows(report: MonthlyReport) -> list[list[object]]:
    """The report as one table: the cities' lines (no hall id), then the halls'."""
    return [[cell(getattr(line, column)) for column in COLUMNS] for line in (*report.cities, *report.halls)]


def attribution_rows(report: MonthlyReport) -> list[list[object]]:
    return [[cell(getattr(line, column)) for column in ATTRIBUTION_COLUMNS] for line in report.attribution]


def as_csv(report: MonthlyReport) -> str:
    return tables.as_csv(COLUMNS, rows(report))


def as_xlsx(report: MonthlyReport) -> bytes:
    """Three sheets: the report's lines, who bore the complaints the halls did not, and what it is."""
    # Imported only when a spreadsheet is asked for: it would add a fifth of a second to the start-up.
    import openpyxl

    book = openpyxl.Workbook()
    lines = book.active
    assert lines is not None
    lines.title = "Report"
    lines.append(COLUMNS)
    for row in rows(report):
        lines.append(row)
    attribution = book.create_sheet("Attribution")
    attribution.append(ATTRIBUTION_COLUMNS)
    for row in attribution_rows(report):
        attribution.append(row)
    about = book.create_sheet("About")
    for key in ("period", "scope", "policy_version", "on_time_target"):
        about.append([key, getattr(report, key)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
