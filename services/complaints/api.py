"""REST entry points: parse, call one use case, map errors."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status

from services.complaints.access import ACCESS
from services.complaints.application import (
    CheckFinding,
    ComplaintsApplication,
    Reclassification,
    RegisterComplaint,
    RegisterHall,
    StepRequest,
    SurveyNotFound,
    caller_key,
    fingerprint_of,
)
from services.complaints.attachments_api import evidence
from services.complaints.domain import Complaint, HallChange, Step
from services.complaints.personal_data import CustomerData
from services.complaints.schemas import (
    CallbackBody,
    CheckBody,
    ComplaintCreate,
    ComplaintPublic,
    ContactBody,
    DispatchBody,
    EscalateBody,
    FeedbackBody,
    HallChangeBody,
    HallCreate,
    HallPublic,
    PauseBody,
    ProgressQuery,
    PublicProgress,
    PublicStep,
    ReclassifyBody,
    RectifyBody,
    RelatedComplaint,
    RelatedComplaints,
    ReviewCheckBody,
    StepBody,
    SurveyAnswer,
    SurveyLink,
    SurveyRecorded,
)
from services.complaints.surveys import InvalidSurveyToken, SurveyTicket, SurveyTokens
from shared.auth import Caller, Principal
from shared.errors import ServiceError
from shared.metrics import COMPLAINTS_REGISTERED, COMPLAINTS_REPEATED
from shared.openapi import error_responses
from shared.validation import Instant, TextParam

router = APIRouter(prefix="/api/v1")

IdempotencyKey = Annotated[
    TextParam | None,
    Header(
        min_length=1,
        max_length=200,
        description="Makes a retried POST safe: the same key with the same body returns the first response"
        " (marked `Idempotent-Replayed: true`) and records nothing new; with another body, 422. Keys belong"
        " to the caller (its API key or token subject, and unit) and to one kind of request: no one else's"
        " request can replay or block yours.",
    ),
]


def application(request: Request) -> ComplaintsApplication:
    app: ComplaintsApplication = request.app.state.complaints
    return app


def mark_replayed(response: Response, created: bool) -> None:
    """Tells the caller its retry was answered from the first request, not carried out again."""
    if not created:
        response.headers["Idempotent-Replayed"] = "true"


def present(
    complaint: Complaint,
    request: Request,
    caller: Principal,
    response: Response,
    created: bool = True,
    customer: CustomerData | None = None,
    repeat_of: list[str] | None = None,
) -> ComplaintPublic:
    """`customer`: the complaint's customer data when the caller has it at hand; else it is unsealed here.
    `repeat_of`: the numbers of the earlier complaints that made it a repeat, if at hand; else found here."""
    mark_replayed(response, created)
    complaints = application(request)
    owner_unit = str(complaints.owner_unit(complaint))
    unmasked = caller.has_any(*ACCESS.actions["complaint.see_contact"])
    customer = customer or complaints.customer_of(complaint)
    if repeat_of is None:
        repeat_of = complaints.repeated(complaint, caller)
    return ComplaintPublic.of(complaint, customer, owner_unit=owner_unit, repeat_of=repeat_of, unmasked=unmasked)


@router.post("/halls", status_code=status.HTTP_201_CREATED, response_model=HallPublic)
def register_hall(
    body: HallCreate, request: Request, response: Response, caller: Caller, idempotency_key: IdempotencyKey = None
) -> HallPublic:
    """Registers a service hall. Its `hall_id` is the operator's code; registering it twice is a 409, but a
    retry with the same `Idempotency-Key` and body answers as the first time did."""
    ACCESS.require(caller, "hall.register")
    hall, created = application(request).register_hall(
        RegisterHall(
            hall_code=body.hall_id,
            name=body.name,
            province=body.province,
            city=body.city,
            level=body.level,
            ownership=body.ownership,
        ),
        caller,
        idempotency_key,
    )
    mark_replayed(response, created)
    return HallPublic.of(hall, application(request).clock())


@router.get("/halls/{hall_id}", response_model=HallPublic)
def get_hall(
    hall_id: TextParam,
    request: Request,
    caller: Caller,
    as_at: Annotated[Instant | None, Query(description="The hall as it was then; now if absent.")] = None,
) -> HallPublic:
    """A hall, closed or not, as it is now or was at `as_at`, with every change of its life."""
    complaints = application(request)
    return HallPublic.of(complaints.get_hall(hall_id, caller), as_at or complaints.clock())


@router.post("/halls/{hall_id}/changes", response_model=HallPublic)
def change_hall(
    hall_id: TextParam,
    body: HallChangeBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> HallPublic:
    """Changes the hall's name, level, ownership or closure from `effective_from` on (which may be past or
    future): grading takes the hall as it was in the period, as the scoring policy says. A closed hall is still
    read as ever; a complaint received after its closure is refused (422)."""
    ACCESS.require(caller, "hall.change")
    change = HallChange(body.effective_from, body.name, body.level, body.ownership, body.closed)
    step_request = StepRequest(
        actor=caller.subject,
        reason=body.reason,
        idempotency_key=None if idempotency_key is None else caller_key("hall-change", caller, idempotency_key),
        fingerprint=fingerprint_of("hall-change", hall_id, body.model_dump(mode="json")),
    )
    complaints = application(request)
    hall, changed = complaints.change_hall(hall_id, change, step_request, caller)
    mark_replayed(response, changed)
    return HallPublic.of(hall, complaints.clock())


@router.post("/complaints", status_code=status.HTTP_201_CREATED, response_model=ComplaintPublic)
async def register_complaint(
    body: ComplaintCreate, request: Request, response: Response, caller: Caller, idempotency_key: IdempotencyKey = None
) -> ComplaintPublic:
    """Registers a complaint and returns its id and complaint number.

    A repeat with the same `Idempotency-Key` returns the same complaint (header
    `Idempotent-Replayed: true`) and records nothing new.
    """
    ACCESS.require(caller, "complaint.register")
    complaint, created, repeat_of = await application(request).register_complaint(
        RegisterComplaint(
            hall_code=body.hall_id,
            channel=body.channel,
            category=body.category,
            priority=body.priority,
            customer_name=body.customer.name,
            customer_phone=body.customer.phone,
            customer_email=body.customer.email,
            customer_wechat_openid=body.customer.wechat_openid,
            description=body.description,
            received_by=body.received_by or caller.subject,
            received_at=body.received_at,
        ),
        caller,
        idempotency_key=idempotency_key,
    )
    customer: CustomerData | None
    if created:
        COMPLAINTS_REGISTERED.labels(body.channel, body.category, body.priority).inc()
        if complaint.repeat_count:
            province = application(request).known_hall(complaint.hall_code).province
            COMPLAINTS_REPEATED.labels(province, complaint.category).inc()
        customer = CustomerData(body.customer.name, body.customer.phone, email=body.customer.email)
    else:
        customer = await asyncio.to_thread(application(request).customer_of, complaint)
    return present(complaint, request, caller, response, created, customer, repeat_of)


@router.get("/complaints/{complaint_id}/related", response_model=RelatedComplaints)
def related_complaints(complaint_id: uuid.UUID, request: Request, caller: Caller) -> RelatedComplaints:
    """The same customer's other complaints that you may see, at any time, oldest first (at most 100):
    found by a keyed digest of the phone, which never leaves this service. None once the customer's
    personal data is erased."""
    complaints = application(request)
    complaint = complaints.get_complaint(complaint_id, caller)
    return RelatedComplaints(
        items=[
            RelatedComplaint(
                id=other.id,
                number=other.number,
                hall_id=other.hall_code,
                status=other.status,
                received_at=other.received_at,
            )
            for other in complaints.related(complaint, caller)
        ]
    )


@router.get("/complaints/{complaint_id}", response_model=ComplaintPublic)
def get_complaint(complaint_id: uuid.UUID, request: Request, response: Response, caller: Caller) -> ComplaintPublic:
    """Visible to the registering hall and every unit it was handed to (the owner among them), and units above."""
    return present(application(request).get_complaint(complaint_id, caller), request, caller, response)


@router.post(
    "/public/surveys/{token}",
    response_model=SurveyRecorded,
    tags=["public"],
    responses=error_responses(e403="A staff credential was sent: the survey is the customer's own voice."),
)
def answer_survey(token: TextParam, body: SurveyAnswer, request: Request) -> SurveyRecorded:
    """The customer's satisfaction survey (满意度回访), from the link sent once the result was recorded: no
    credentials, once per result. 409 if already answered, 410 once expired or replaced by a newer result.
    A staff credential is refused (403): the survey is the customer's own voice."""
    if request.headers.get("authorization"):
        raise StaffCannotAnswer("a staff credential cannot answer a customer's survey; send none")
    try:
        ticket = survey_tokens(request).read(token)
    except InvalidSurveyToken:
        raise SurveyNotFound("no such survey") from None
    complaint = application(request).answer_survey(ticket, body.satisfaction)
    return SurveyRecorded(number=complaint.number, satisfaction=body.satisfaction)


@router.post(
    "/public/complaints/progress",
    response_model=PublicProgress,
    tags=["public"],
    responses=error_responses(
        e404="No complaint with this number and verification digits.",
        e429="Too many wrong attempts from this address: wait the seconds `Retry-After` says.",
    ),
)
async def public_progress(request: Request, body: ProgressQuery) -> PublicProgress:
    """For customers (客户随时查询投诉处理进程): status and steps, no credentials, no personal data.

    The verification digits travel in the body, never in a URL that logs keep. A wrong number or wrong
    digits get the same 404. Wrong attempts count against the caller's address, not the number: five in
    15 minutes and that address gets 429 with `Retry-After`, while the customer's own query still works.
    """
    client = request.client.host if request.client else "unknown"
    digest = hashlib.sha256(f"progress-client:{client}".encode()).hexdigest()
    complaint, steps = await application(request).public_progress(body.number, body.phone_last_four, digest)
    return PublicProgress(
        number=complaint.number,
        status="paused" if complaint.paused_since else complaint.status,
        received_at=complaint.received_at,
        steps=[PublicStep(step=step, at=at) for step, at in steps],
    )


Use = Callable[[uuid.UUID, StepRequest, Principal], tuple[Complaint, bool]]


# Steps that record a complaint's result: their answer carries the customer's survey link.
RESULT_STEPS = frozenset({"rectify", "resolve-on-spot"})


class StaffCannotAnswer(ServiceError):
    status_code = 403
    error_type = "forbidden"
    field = ("header", "authorization")


def survey_tokens(request: Request) -> SurveyTokens:
    tokens: SurveyTokens = request.app.state.survey_tokens
    return tokens


def by_owner(request: Request, perform: Callable[[Complaint, Step], None]) -> Use:
    """A step that the owner's unit (or one above it) takes by calling the aggregate."""
    act = application(request).act
    return lambda complaint_id, step_request, viewer: act(complaint_id, step_request, perform, viewer)


def take_step(
    action: str,
    complaint_id: uuid.UUID,
    body: StepBody,
    request: Request,
    response: Response,
    caller: Principal,
    idempotency_key: str | None,
    use: Use,
) -> ComplaintPublic:
    ACCESS.require(caller, f"complaint.{action}")
    step_request = StepRequest(
        actor=caller.subject,
        reason=body.reason,
        idempotency_key=None if idempotency_key is None else caller_key("complaint-step", caller, idempotency_key),
        fingerprint=fingerprint_of(action, str(complaint_id), body.model_dump(mode="json")),
    )
    complaint, created = use(complaint_id, step_request, caller)
    public = present(complaint, request, caller, response, created)
    if action in RESULT_STEPS and complaint.result_at is not None:
        ticket = SurveyTicket.for_result(complaint.id, complaint.result_at)
        token = survey_tokens(request).issue(ticket)
        link = SurveyLink(path=f"/api/v1/public/surveys/{token}", token=token, expires_at=ticket.expires_at)
        public = public.model_copy(update={"survey": link})
    return public


@router.post("/complaints/{complaint_id}/dispatch", response_model=ComplaintPublic)
def dispatch(
    complaint_id: uuid.UUID,
    body: DispatchBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> ComplaintPublic:
    """Hands the complaint to another unit (电子派单): a registered hall, by its code or unit path, or a unit
    above the complaint's hall (e.g. the city's customer service centre, `group/广东/深圳`). The current owner
    keeps it until the receiving unit accepts; only the owner's unit (or one above it) can dispatch."""
    dispatch_to = application(request).dispatch
    return take_step(
        "dispatch",
        complaint_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        lambda complaint_id, step_request, viewer: dispatch_to(complaint_id, body.to_unit, step_request, viewer),
    )


@router.post("/complaints/{complaint_id}/check", response_model=ComplaintPublic)
def check(
    complaint_id: uuid.UUID,
    body: CheckBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> ComplaintPublic:
    """Records the finding (核查): substantiated or not, root cause and its class, responsible unit."""
    finding = CheckFinding(body.substantiated, body.root_cause, body.root_cause_class, body.responsible_unit)
    return take_step(
        "check",
        complaint_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        lambda complaint_id, step_request, viewer: application(request).check(
            complaint_id, finding, step_request, viewer
        ),
    )


@router.post("/complaints/{complaint_id}/review-check", response_model=ComplaintPublic)
def review_check(
    complaint_id: uuid.UUID,
    body: ReviewCheckBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> ComplaintPublic:
    """A quality manager of a unit above the hall rules again on the hall's check (复核), open or closed;
    the hall cannot check again after that, and scoring takes the review's ruling."""
    return take_step(
        "review-check",
        complaint_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        lambda complaint_id, step_request, viewer: application(request).review_check(
            complaint_id, body.substantiated, step_request, viewer
        ),
    )


@router.post("/complaints/{complaint_id}/contact", response_model=ComplaintPublic)
def contact(
    complaint_id: uuid.UUID,
    body: ContactBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> ComplaintPublic:
    """Records one attempt to communicate with the customer (沟通) and its outcome."""
    return take_step(
        "contact",
        complaint_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        by_owner(request, lambda complaint, step: complaint.contact(body.outcome, step)),
    )


@router.post("/complaints/{complaint_id}/rectify", response_model=ComplaintPublic)
def rectify(
    complaint_id: uuid.UUID,
    body: RectifyBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> ComplaintPublic:
    """Records the corrective action (整改) with its owner, deadline and evidence: references, and uploaded
    files by id (`attachments`), which whoever sees the complaint's hall may then read."""
    files, complaints = evidence(request), application(request)

    def perform(complaint: Complaint, step: Step) -> None:
        refs = files.refs_for(body.attachments, caller, ("body", "attachments"))
        attachments = [ref.as_event_field() for ref in refs]
        complaint.rectify(body.action, body.owner, body.deadline, body.evidence, step, attachments)
        unit = complaints.registering_unit(complaint)
        files.link(refs, "complaint", complaint.id, unit, ("body", "attachments"))

    use = by_owner(request, perform)
    return take_step("rectify", complaint_id, body, request, response, caller, idempotency_key, use)


@router.post("/complaints/{complaint_id}/feedback", response_model=ComplaintPublic)
def feedback(
    complaint_id: uuid.UUID,
    body: FeedbackBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> ComplaintPublic:
    """The customer's verdict (反馈): satisfied, basically satisfied or unsatisfied."""
    return take_step(
        "feedback",
        complaint_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        lambda complaint_id, step_request, viewer: application(request).give_feedback(
            complaint_id, body.satisfaction, step_request, viewer
        ),
    )


@router.post("/complaints/{complaint_id}/callback", response_model=ComplaintPublic)
def callback(
    complaint_id: uuid.UUID,
    body: CallbackBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> ComplaintPublic:
    """A supervisor's callback (回访), required after unsatisfied feedback before the loop can close."""
    return take_step(
        "callback",
        complaint_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        by_owner(request, lambda complaint, step: complaint.callback(body.outcome, step)),
    )


@router.post("/complaints/{complaint_id}/pause", response_model=ComplaintPublic)
def pause(
    complaint_id: uuid.UUID,
    body: PauseBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> ComplaintPublic:
    """Waits (挂起) for what `reason_code` names: the SLA policy says which clocks that stops, until resume,
    and for how long before the clocks run again unless a unit above the hall approves."""
    return take_step(
        "pause",
        complaint_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        by_owner(request, lambda complaint, step: complaint.pause(body.reason_code, step)),
    )


@router.post("/complaints/{complaint_id}/reclassify", response_model=ComplaintPublic)
def reclassify(
    complaint_id: uuid.UUID,
    body: ReclassifyBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> ComplaintPublic:
    """Corrects the category, priority or channel (改类). The SLA limits are derived anew from the receipt, as
    if it had been received so, keeping the working time elapsed and its pauses; milestones that fired stay."""
    change = Reclassification(body.category, body.priority, body.channel)
    return take_step(
        "reclassify",
        complaint_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        lambda complaint_id, step_request, viewer: application(request).reclassify(
            complaint_id, change, step_request, viewer
        ),
    )


@router.post("/complaints/{complaint_id}/escalate", response_model=ComplaintPublic)
def escalate(
    complaint_id: uuid.UUID,
    body: EscalateBody,
    request: Request,
    response: Response,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> ComplaintPublic:
    """Escalates by hand (升级), e.g. on the customer's demand, to the hall's manager or a unit above the hall;
    only upwards, and no higher than the group."""
    return take_step(
        "escalate",
        complaint_id,
        body,
        request,
        response,
        caller,
        idempotency_key,
        lambda complaint_id, step_request, viewer: application(request).escalate(
            complaint_id, body.target_unit, step_request, viewer
        ),
    )


def add_plain_step(action: str, use_of: Callable[[Request], Use], description: str) -> None:
    """A step whose body is only its reason; `use_of` gives the use case that takes it."""

    def endpoint(
        complaint_id: uuid.UUID,
        body: StepBody,
        request: Request,
        response: Response,
        caller: Caller,
        idempotency_key: IdempotencyKey = None,
    ) -> ComplaintPublic:
        return take_step(action, complaint_id, body, request, response, caller, idempotency_key, use_of(request))

    name = action.replace("-", "_")
    router.add_api_route(
        f"/complaints/{{complaint_id}}/{action}",
        endpoint,
        methods=["POST"],
        response_model=ComplaintPublic,
        name=name,
        operation_id=f"complaint_{name}",
        description=description,
    )


def owner_takes(perform: Callable[[Complaint, Step], None]) -> Callable[[Request], Use]:
    return lambda request: by_owner(request, perform)


for plain_step in (
    (
        "resolve-on-spot",
        owner_takes(Complaint.resolve_on_spot),
        "Resolved at the counter (现场解决); feedback is still needed.",
    ),
    (
        "accept",
        lambda request: application(request).accept,
        "The receiving unit (or one above it) accepts a hand-off and becomes the owner.",
    ),
    ("acknowledge", owner_takes(Complaint.acknowledge), "First response to the customer; stops the response clock."),
    (
        "close",
        owner_takes(Complaint.close),
        "Closes (结案); refused until the customer's feedback is in and not unsatisfied.",
    ),
    ("reopen", owner_takes(Complaint.reopen), "Reopens a closed complaint, or one whose customer was unsatisfied."),
    ("resume", owner_takes(Complaint.resume), "The customer is back: the SLA clocks run again."),
):
    add_plain_step(*plain_step)
add_plain_step(
    "approve-pause",
    lambda request: application(request).approve_pause,
    "A quality manager of a unit above the hall lets the pause under way stop the SLA clocks past the"
    " policy's cap (`max_pause`); without it, the clocks run again once the cap is used up.",
)
