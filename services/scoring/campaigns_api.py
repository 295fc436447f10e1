"""The evaluation campaign over REST: open, the steps of each level, close, and the results register.

A step out of order is a 409; a step over the policy's margin a 422 naming the limit; a unit deciding
outside its own part of the organisation a 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, Field

from services.scoring.api import GRADING_PERIOD, GRADING_PERIOD_PATTERN, NotFound, evaluation_scope, ranking_scope
from services.scoring.campaign import Campaign, LimitExceeded, NotEligible, OutOfOrder
from services.scoring.campaigns import CampaignExists, CampaignNotFound, Campaigns
from services.scoring.policy import Grade, months_of
from services.scoring.read_model import Adjustment, changes_after, hall_unit, halls_within
from services.scoring.tables import as_csv, cell
from shared.auth import Caller, Forbidden, Principal, Role, require_roles
from shared.errors import ServiceError
from shared.openapi import error_responses
from shared.organisation import OrgUnit
from shared.validation import RequestModel, TextParam

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"])
HallIds = Annotated[list[TextParam], Field(max_length=5000)]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]
REGISTER_COLUMNS = (
    "hall_id",
    "province",
    "city",
    "status",
    "score",
    "rank",
    "provisional_grade",
    "tied_at_boundary",
    "claimed_grade",
    "certified_grade",
    "outcome",
    "policy_version",
)


class StepOutOfOrder(ServiceError):
    status_code = 409
    error_type = "out_of_order"


class CampaignAlreadyOpen(ServiceError):
    status_code = 409
    error_type = "campaign_exists"
    field = ("body", "scope")


class Ineligible(ServiceError):
    status_code = 422
    error_type = "not_eligible"


class OverTheLimit(ServiceError):
    status_code = 422
    error_type = "limit_exceeded"


class NotClosed(ServiceError):
    status_code = 409
    error_type = "not_closed"


class OpenCampaign(RequestModel):
    period: Annotated[str, Field(pattern=GRADING_PERIOD_PATTERN, description="A month, quarter or year, e.g. 2026-11.")]
    scope: TextParam = Field(description="group, group/<province> or group/<province>/<city>")
    reason: Reason


class SelfAssessment(RequestModel):
    hall_id: TextParam
    claimed_grade: Grade
    reason: Reason


class CityCertification(RequestModel):
    city: TextParam = Field(description="The certifying city, e.g. group/浙江/杭州.")
    meets: HallIds = Field(description="Halls meeting the standard, not nominated; the city's others are below.")
    nominated: HallIds = Field(description="Halls nominated to the province as good or better.")
    reason: Reason


class ProvinceReview(RequestModel):
    province: TextParam = Field(description="The reviewing province, e.g. group/浙江.")
    good: HallIds = Field(description="Nominees certified good and not put forward for excellent.")
    nominated: HallIds = Field(description="Nominees certified good and put forward to the group for excellent.")
    reason: Reason


class GroupCertification(RequestModel):
    excellent: HallIds
    reason: Reason


class Closing(RequestModel):
    reason: Reason


class CampaignHall(BaseModel):
    hall_id: str
    province: str
    city: str
    claimed_grade: Grade | None
    certified_grade: Grade | None  # as certified by the steps so far


class CampaignView(BaseModel):
    id: uuid.UUID
    period: str
    scope: str
    policy_version: str
    stage: str
    waiting_for: list[str]  # the units whose step comes next
    steps: list[dict[str, Any]]  # each with its actor, unit, reason and time
    halls: list[CampaignHall]
    closed_at: datetime | None
    adjustments: list[Adjustment]  # score changes recorded after the close: they change no certified grade


class ResultRow(BaseModel):
    hall_id: str
    province: str
    city: str
    status: str
    score: float
    components: dict[str, float]
    rank: int | None
    provisional_grade: str | None
    tied_at_boundary: bool
    claimed_grade: str | None
    certified_grade: str | None
    outcome: str
    policy_version: str


class ResultsRegister(BaseModel):
    campaign_id: uuid.UUID
    period: str
    scope: str
    closed_at: datetime
    halls: list[ResultRow]


def campaigns(request: Request) -> Campaigns:
    desk: Campaigns = request.app.state.campaigns
    return desk


def deciding_unit(caller: Principal, text: str, field: str) -> OrgUnit:
    """A unit the caller decides for: its own or one below it; quality managers decide."""
    require_roles(caller, Role.quality_manager)
    try:
        unit = OrgUnit.parse(text)
    except ValueError as error:
        raise Ineligible(str(error), ("body", field)) from None
    return within_own_unit(caller, unit)


def within_own_unit(caller: Principal, unit: OrgUnit) -> OrgUnit:
    if not caller.can_see(unit):
        raise Forbidden(f"{unit} is outside your unit {caller.unit}: each level decides only inside its own")
    return unit


async def answered(step: Awaitable[Campaign]) -> Campaign:
    """Runs one step, mapping the campaign's refusals to their answers."""
    try:
        return await step
    except CampaignNotFound as missing:
        raise NotFound(str(missing), ("path", "campaign_id")) from None
    except OutOfOrder as refused:
        raise StepOutOfOrder(str(refused)) from None
    except NotEligible as refused:
        field = ("body", refused.field) if refused.index is None else ("body", refused.field, refused.index)
        raise Ineligible(str(refused), field) from None
    except LimitExceeded as refused:
        raise OverTheLimit(str(refused), ("body", refused.field)) from None


async def view(desk: Campaigns, campaign: Campaign, caller: Principal) -> CampaignView:
    scope = OrgUnit.parse(campaign.scope)
    own = None if caller.can_see(scope) else await halls_within(desk.pool, caller.unit)
    adjustments = []
    if campaign.closed_at is not None and campaign.snapshot is not None:
        halls = [row["hall_id"] for row in campaign.snapshot]
        adjustments = await changes_after(desk.pool, months_of(campaign.period), halls, campaign.closed_at)
    return CampaignView(
        id=campaign.id,
        period=campaign.period,
        scope=campaign.scope,
        policy_version=campaign.policy_version,
        stage=campaign.stage,
        waiting_for=waiting_for(campaign),
        steps=campaign.steps,
        halls=[
            CampaignHall(
                hall_id=hall.hall_id,
                province=hall.province,
                city=hall.city,
                claimed_grade=campaign.self_assessments.get(hall.hall_id),
                certified_grade=campaign.certified_grade(hall.hall_id),
            )
            for hall in sorted(campaign.roster.values(), key=lambda hall: hall.hall_id)
            if own is None or hall.hall_id in own
        ],
        closed_at=campaign.closed_at,
        adjustments=[a for a in adjustments if own is None or a.hall_id in own],
    )


def waiting_for(campaign: Campaign) -> list[str]:
    stage = campaign.stage
    if stage in ("self_assessment", "awaiting_cities"):
        return sorted(campaign.cities - set(campaign.city_meets))
    if stage == "awaiting_provinces":
        return sorted(campaign.provinces - set(campaign.province_good))
    if stage == "awaiting_group":
        return ["group"]
    return [campaign.scope] if stage == "awaiting_close" else []


async def visible_campaign(request: Request, caller: Principal, campaign_id: uuid.UUID) -> Campaign:
    try:
        campaign = await campaigns(request).get(campaign_id)
    except CampaignNotFound as missing:
        raise NotFound(str(missing), ("path", "campaign_id")) from None
    ranking_scope(caller, campaign.scope)  # overseeing it, or ranked in it
    return campaign


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CampaignView)
async def open_campaign(request: Request, caller: Caller, body: OpenCampaign) -> CampaignView:
    """Opens the period's campaign over a scope: its graded halls as they stand now are its roster."""
    require_roles(caller, Role.quality_manager)
    unit = within_own_unit(caller, evaluation_scope(body.scope, ("body", "scope")))
    desk = campaigns(request)
    try:
        campaign = await desk.open(body.period, unit, desk.actor(caller.subject, caller.unit, body.reason))
    except CampaignExists as exists:
        raise CampaignAlreadyOpen(str(exists)) from None
    return await view(desk, campaign, caller)


@router.get("", response_model=CampaignView, responses=error_responses(e404="No campaign of that scope and period."))
async def find_campaign(
    request: Request,
    caller: Caller,
    period: Annotated[str, GRADING_PERIOD],
    scope: Annotated[TextParam, Query()] = "group",
) -> CampaignView:
    """The campaign of a period and scope."""
    unit = ranking_scope(caller, scope)
    desk = campaigns(request)
    try:
        campaign = await desk.find(period, unit)
    except CampaignNotFound:
        raise NotFound(f"no campaign for {unit} {period}", ("query", "scope")) from None
    return await view(desk, campaign, caller)


@router.get("/{campaign_id}", response_model=CampaignView)
async def get_campaign(request: Request, caller: Caller, campaign_id: uuid.UUID) -> CampaignView:
    return await view(campaigns(request), await visible_campaign(request, caller, campaign_id), caller)


@router.post("/{campaign_id}/self-assessments", response_model=CampaignView)
async def assess_self(request: Request, caller: Caller, campaign_id: uuid.UUID, body: SelfAssessment) -> CampaignView:
    """A hall's claimed grade (自评上报), by its manager; again before its city certifies, to correct it."""
    require_roles(caller, Role.hall_manager, Role.quality_manager)
    desk = campaigns(request)
    unit = await hall_unit(desk.pool, body.hall_id)
    if unit is None or not caller.can_see(unit):
        raise Forbidden(f"hall {body.hall_id} is outside your unit {caller.unit}")
    actor = desk.actor(caller.subject, caller.unit, body.reason)

    async def decide(campaign: Campaign) -> None:
        campaign.assess_self(body.hall_id, body.claimed_grade, actor)

    return await view(desk, await answered(desk.step(campaign_id, decide)), caller)


@router.post("/{campaign_id}/city-certifications", response_model=CampaignView)
async def certify_city(
    request: Request, caller: Caller, campaign_id: uuid.UUID, body: CityCertification
) -> CampaignView:
    """The city certifies its halls meeting the standard and nominates good-or-better to the province."""
    city = deciding_unit(caller, body.city, "city")
    desk = campaigns(request)
    actor = desk.actor(caller.subject, caller.unit, body.reason)

    async def decide(campaign: Campaign) -> None:
        assessed = await desk.assessed_halls(campaign)
        campaign.certify_city(str(city), body.meets, body.nominated, assessed, actor)

    return await view(desk, await answered(desk.step(campaign_id, decide)), caller)


@router.post("/{campaign_id}/province-reviews", response_model=CampaignView)
async def review_province(
    request: Request, caller: Caller, campaign_id: uuid.UUID, body: ProvinceReview
) -> CampaignView:
    """The province certifies "good" among its cities' nominees, fewer than nominated, and nominates excellent."""
    province = deciding_unit(caller, body.province, "province")
    desk = campaigns(request)
    actor = desk.actor(caller.subject, caller.unit, body.reason)

    async def decide(campaign: Campaign) -> None:
        rules = desk.rules(campaign).campaign
        campaign.review_province(str(province), body.good, body.nominated, rules, actor)

    return await view(desk, await answered(desk.step(campaign_id, decide)), caller)


@router.post("/{campaign_id}/group-certification", response_model=CampaignView)
async def certify_group(
    request: Request, caller: Caller, campaign_id: uuid.UUID, body: GroupCertification
) -> CampaignView:
    """The group certifies "excellent" among the provinces' nominees, within the policy's share of them."""
    deciding_unit(caller, "group", "excellent")
    desk = campaigns(request)
    actor = desk.actor(caller.subject, caller.unit, body.reason)

    async def decide(campaign: Campaign) -> None:
        campaign.certify_group(body.excellent, desk.rules(campaign).campaign, actor)

    return await view(desk, await answered(desk.step(campaign_id, decide)), caller)


@router.post("/{campaign_id}/close", response_model=CampaignView)
async def close_campaign(request: Request, caller: Caller, campaign_id: uuid.UUID, body: Closing) -> CampaignView:
    """Freezes every hall's standing with its certified grade; later events become adjustments."""
    campaign = await visible_campaign(request, caller, campaign_id)
    deciding_unit(caller, campaign.scope, "reason")
    desk = campaigns(request)
    actor = desk.actor(caller.subject, caller.unit, body.reason)
    return await view(desk, await answered(desk.close(campaign_id, actor)), caller)


@router.get("/{campaign_id}/results", response_model=ResultsRegister)
async def results(
    request: Request,
    caller: Caller,
    campaign_id: uuid.UUID,
    format: Annotated[Literal["json", "csv"], Query(description="json, or csv for spreadsheets")] = "json",  # noqa: A002
) -> Any:
    """The results register of a closed campaign: each hall's certified grade and its reward or penalty."""
    campaign = await visible_campaign(request, caller, campaign_id)
    if campaign.snapshot is None or campaign.closed_at is None:
        raise NotClosed(f"campaign {campaign.scope} {campaign.period} is not closed: nothing is certified yet")
    scope = OrgUnit.parse(campaign.scope)
    own = None if caller.can_see(scope) else await halls_within(campaigns(request).pool, caller.unit)
    rows = [ResultRow(**row) for row in campaign.snapshot if own is None or row["hall_id"] in own]
    if format == "csv":
        return Response(register_csv(rows), media_type="text/csv; charset=utf-8")
    return ResultsRegister(
        campaign_id=campaign.id, period=campaign.period, scope=campaign.scope, closed_at=campaign.closed_at, halls=rows
    )


def register_csv(rows: list[ResultRow]) -> str:
    values = [row.model_dump() for row in rows]
    return as_csv(REGISTER_COLUMNS, ([cell(row[column]) for column in REGISTER_COLUMNS] for row in values))
