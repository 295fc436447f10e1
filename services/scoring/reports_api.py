"""The monthly report over REST: as it stands now (or as of an instant), published, and as published;
as JSON, CSV or XLSX."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, Field

from services.scoring.api import MONTH_PATTERN, PERIOD, SCOPE, NotFound, visible_scope
from services.scoring.application import ScoringApplication
from services.scoring.published_report import PublishedReport, report_id
from services.scoring.report import MonthlyReport, as_csv, as_xlsx, monthly_report
from shared.auth import Caller, Role, require_roles
from shared.clock import Clock
from shared.errors import ServiceError
from shared.openapi import error_responses
from shared.validation import Instant, RequestModel, TextParam

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
Format = Annotated[Literal["json", "csv", "xlsx"], Query(description="json, csv, or xlsx for spreadsheets")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# `format=csv|xlsx` answers the report as a file instead of JSON.
REPORT_FORMATS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}, XLSX: {}}, "description": "The report (JSON, or the file `format` asks for)."}
}


class PublishRequest(RequestModel):
    period: Annotated[str, Field(pattern=MONTH_PATTERN, description="A calendar month, e.g. 2026-11.")]
    scope: TextParam = "group"
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class Publication(BaseModel):
    period: str
    scope: str
    edition: int
    digest: str  # SHA-256 of the report's JSON, keys sorted: what `MonthlyReportPublished` carries
    published_at: datetime
    report: MonthlyReport


class PublishedAgain(ServiceError):
    status_code = 409
    error_type = "conflict"


def answered(report: MonthlyReport, format: str, name: str) -> Any:  # noqa: A002 - the query's name
    if format == "csv":
        return Response(as_csv(report), media_type="text/csv; charset=utf-8")
    if format == "xlsx":
        headers = {"Content-Disposition": f'attachment; filename="{name}.xlsx"'}
        return Response(as_xlsx(report), media_type=XLSX, headers=headers)
    return report


@router.get("/monthly", response_model=MonthlyReport, responses=REPORT_FORMATS)
async def current_report(
    request: Request,
    caller: Caller,
    period: Annotated[str, PERIOD],
    scope: Annotated[TextParam, SCOPE] = "group",
    as_of: Annotated[Instant | None, Query(description="As the platform knew it then.")] = None,
    format: Format = "json",  # noqa: A002
) -> Any:
    """The scope's month per city and hall, from the facts recorded so far (or by `as_of`)."""
    unit = visible_scope(caller, scope)
    report = await monthly_report(request.app.state.pool, request.app.state.policies, period, unit, as_of)
    return answered(report, format, f"report-{period}")


@router.post("/monthly", status_code=status.HTTP_201_CREATED, response_model=Publication)
async def publish_report(request: Request, caller: Caller, body: PublishRequest) -> Publication:
    """Publishes the month's report as it stands: the snapshot is kept as this edition, and
    `MonthlyReportPublished` goes out on `scoring.events.v1`. Publishing again makes a new edition."""
    require_roles(caller, Role.quality_manager)
    unit = visible_scope(caller, body.scope)
    report = await monthly_report(request.app.state.pool, request.app.state.policies, body.period, unit, None)
    store: ScoringApplication = request.app.state.scoring
    clock: Clock = request.app.state.clock
    snapshot = report.model_dump(mode="json")

    def publish() -> PublishedReport:
        try:
            published: PublishedReport = store.repository.get(report_id(body.period, str(unit)))
        except AggregateNotFoundError:
            published = PublishedReport.open(body.period, str(unit))
        published.publish(snapshot, caller.subject, body.reason, clock())
        store.save(published)
        return published

    try:
        published = await asyncio.to_thread(publish)
    except IntegrityError:
        raise PublishedAgain(f"the {body.period} report of {unit} was published meanwhile: try again") from None
    return publication(published)


@router.get(
    "/monthly/published",
    response_model=Publication,
    responses={**REPORT_FORMATS, **error_responses(e404="No report of that scope and period was published.")},
)
async def published_report(
    request: Request,
    caller: Caller,
    period: Annotated[str, PERIOD],
    scope: Annotated[TextParam, SCOPE] = "group",
    format: Format = "json",  # noqa: A002
) -> Any:
    """The latest edition published, exactly as it went out."""
    unit = visible_scope(caller, scope)
    store: ScoringApplication = request.app.state.scoring
    try:
        published: PublishedReport = await asyncio.to_thread(store.repository.get, report_id(period, str(unit)))
    except AggregateNotFoundError:
        raise NotFound(f"no {period} report of {unit} was published", ("query", "period")) from None
    if format != "json":
        return answered(MonthlyReport.model_validate(published.report), format, f"report-{period}-{published.edition}")
    return publication(published)


def publication(published: PublishedReport) -> Publication:
    assert published.published_at is not None
    return Publication(
        period=published.period,
        scope=published.scope,
        edition=published.edition,
        digest=published.digest,
        published_at=published.published_at,
        report=MonthlyReport.model_validate(published.report),
    )
