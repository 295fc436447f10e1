"""REST for mass incidents: open one, link its children in batches, act on all of them at once."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Self

from fastapi import APIRouter, Request, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.complaints.access import ACCESS
from services.complaints.api import IdempotencyKey, application, mark_replayed
from services.complaints.application import StepRequest, caller_key, fingerprint_of
from services.complaints.attachments import AttachmentRef
from services.complaints.attachments_api import evidence
from services.complaints.domain import Complaint, Step
from services.complaints.incidents import BATCH, ChildAnswer, ChildStep, Incident, Incidents, OpenIncident, Outcome
from services.complaints.schemas import AttachmentIds, Code, PauseBody, StepBody, Text, UnitRef
from shared.auth import Caller, Principal
from shared.catalog import Category
from shared.contracts import RootCauseClass
from shared.validation import RequestModel

router = APIRouter(prefix="/api/v1", tags=["incidents"])
MAX_WINDOW = timedelta(days=31)


class IncidentCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "cause": "Fibre cut on the Futian backbone",
                    "area": "group/广东/深圳",
                    "category": "network_quality",
                    "window_start": "2026-12-03T08:00:00+08:00",
                    "window_end": "2026-12-03T20:00:00+08:00",
                }
            ]
        }
    )

    cause: Text
    area: UnitRef = Field(description="The unit struck: a path such as `group/广东/深圳`, or a hall's code.")
    category: Category
    window_start: AwareDatetime
    window_end: AwareDatetime = Field(description="After `window_start`, at most 31 days later.")

    @model_validator(mode="after")
    def _window(self) -> Self:
        if not self.window_start < self.window_end <= self.window_start + MAX_WINDOW:
            raise ValueError("window_end must come after window_start, at most 31 days later")
        return self


class IncidentPublic(BaseModel):
    id: uuid.UUID
    cause: str
    area: str
    category: str
    window_start: datetime
    window_end: datetime
    opened_by: str
    opened_at: datetime
    children: list[uuid.UUID] = Field(description="The linked complaints, in the order they were linked.")
    version: int

    @classmethod
    def of(cls, incident: Incident) -> IncidentPublic:
        return cls(
            id=incident.id,
            cause=incident.cause,
            area=incident.area,
            category=incident.category,
            window_start=incident.window_start,
            window_end=incident.window_end,
            opened_by=incident.opened_by,
            opened_at=incident.opened_at,
            children=[uuid.UUID(child) for child in incident.children],
            version=incident.version,
        )


class ChildrenChange(StepBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"reason": "Same outage", "add": ["0b6a4f7e-8d2c-4e1b-9a3f-5c7d1e2b4a60"], "remove": []}]
        }
    )

    add: list[uuid.UUID] = Field(default=[], max_length=BATCH)
    remove: list[uuid.UUID] = Field(default=[], max_length=BATCH)

    @model_validator(mode="after")
    def _something_apart(self) -> Self:
        if not self.add and not self.remove:
            raise ValueError("give complaints to add or remove")
        if both := set(self.add) & set(self.remove):
            raise ValueError(f"{sorted(map(str, both))[0]} is both added and removed")
        return self


class BulkResultBody(StepBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "reason": "Service restored at 14:00; each customer told by SMS",
                    "action": "Backbone fibre spliced",
                    "owner": "network-ops",
                    "evidence": ["ticket://NOC-1181"],
                }
            ]
        }
    )

    action: Text
    owner: Code
    evidence: list[Text] = Field(default=[], max_length=20)
    attachments: AttachmentIds = Field(
        default=[],
        max_length=20,
        description="Uploaded evidence (`POST /api/v1/attachments`), by id: each child's rectification refers to"
        " it, and whoever sees a child's hall may read it.",
    )
    root_cause_class: RootCauseClass = Field(
        default="network", description="For a child not checked yet: it is checked with the incident's cause."
    )


class ChildResult(BaseModel):
    id: uuid.UUID
    outcome: Outcome
    reason: str | None


class ChildrenResults(BaseModel):
    incident_id: uuid.UUID
    action: str
    done: int
    unchanged: int
    refused: int
    results: list[ChildResult]

    @classmethod
    def of(cls, incident: Incident, action: str, answers: list[ChildAnswer]) -> ChildrenResults:
        return cls(
            incident_id=incident.id,
            action=action,
            done=sum(answer.outcome == "done" for answer in answers),
            unchanged=sum(answer.outcome == "unchanged" for answer in answers),
            refused=sum(answer.outcome == "refused" for answer in answers),
            results=[ChildResult(id=uuid.UUID(a.complaint_id), outcome=a.outcome, reason=a.reason) for a in answers],
        )


def incidents(request: Request) -> Incidents:
    return Incidents(application(request))


def step_request(
    action: str, incident_id: uuid.UUID | None, body: RequestModel, caller: Principal, key: str | None, reason: str
) -> StepRequest:
    return StepRequest(
        actor=caller.subject,
        reason=reason,
        idempotency_key=None if key is None else caller_key(f"incident-{action}", caller, key),
        fingerprint=fingerprint_of(action, str(incident_id), body.model_dump(mode="json")),
    )


@router.post("/incidents", status_code=status.HTTP_201_CREATED, response_model=IncidentPublic)
def open_incident(
    body: IncidentCreate, request: Request, response: Response, caller: Caller, idempotency_key: IdempotencyKey = None
) -> IncidentPublic:
    """Opens a mass incident (重大投诉): its cause, the unit struck, when, and the complaints' category."""
    ACCESS.require(caller, "incident.open")
    area = application(request).unit_named_in_request(body.area, ("body", "area"))
    opening = OpenIncident(body.cause, area, body.category, body.window_start, body.window_end)
    request_ = step_request("open", None, body, caller, idempotency_key, body.cause)
    incident, created = incidents(request).open(opening, request_, caller)
    mark_replayed(response, created)
    return IncidentPublic.of(incident)


@router.get("/incidents/{incident_id}", response_model=IncidentPublic)
def get_incident(incident_id: uuid.UUID, request: Request, caller: Caller) -> IncidentPublic:
    return IncidentPublic.of(incidents(request).get(incident_id, caller))


@router.post("/incidents/{incident_id}/children", response_model=ChildrenResults)
def change_children(incident_id: uuid.UUID, body: ChildrenChange, request: Request, caller: Caller) -> ChildrenResults:
    """Links (`add`) and unlinks (`remove`) up to 1,000 complaints each, answering for each: `done`,
    `unchanged` (already so) or `refused` with why (not found, of a hall outside the area, a child of another
    incident). Each link is the complaint's own `ComplaintLinkedToIncident` event. Repeating it changes nothing."""
    ACCESS.require(caller, "incident.link")
    request_ = step_request("children", incident_id, body, caller, None, body.reason)
    incident, answers = incidents(request).change_children(incident_id, body.add, body.remove, request_, caller)
    return ChildrenResults.of(incident, "children", answers)


def bulk_result(
    body: BulkResultBody, refs: Sequence[AttachmentRef], keep: Callable[[Complaint], None]
) -> Callable[[Incident], ChildStep]:
    """The result for each child: checked with the incident's cause if it was not, the customer told (the
    reason), then the rectification recorded, referring to the files (`refs`), which `keep` links to it."""
    attachments = [ref.as_event_field() for ref in refs]

    def for_incident(incident: Incident) -> ChildStep:
        def perform(complaint: Complaint, step: Step) -> None:
            if not complaint.checked:
                complaint.check(True, incident.cause, body.root_cause_class, incident.area, step)
            if complaint.contacts == 0:
                complaint.contact(step.reason, step)
            complaint.rectify(body.action, body.owner, step.at, body.evidence, step, attachments)
            keep(complaint)

        return perform

    return for_incident


# The step each child takes, for the incident, from the request's body: made by the route before any is taken.
PerformOf = Callable[[StepBody, Request, Principal], Callable[[Incident], ChildStep]]


def add_bulk_action(action: str, body_type: type[StepBody], perform_of: PerformOf, doc: str) -> None:
    def endpoint(
        incident_id: uuid.UUID,
        body: StepBody,
        request: Request,
        response: Response,
        caller: Caller,
        idempotency_key: IdempotencyKey = None,
    ) -> ChildrenResults:
        ACCESS.require(caller, "incident.act")
        request_ = step_request(action, incident_id, body, caller, idempotency_key, body.reason)
        perform = perform_of(body, request, caller)
        incident, answers, taken = incidents(request).act(incident_id, action, perform, request_, caller)
        mark_replayed(response, taken)
        return ChildrenResults.of(incident, action, answers)

    endpoint.__annotations__["body"] = body_type
    router.add_api_route(
        f"/incidents/{{incident_id}}/{action}",
        endpoint,
        methods=["POST"],
        response_model=ChildrenResults,
        name=f"incident_{action}",
        operation_id=f"incident_{action}",
        description=doc + BULK_ANSWER,
    )


BULK_ANSWER = (
    " Each child's step is its own event, naming the incident; the answer says for each child `done` or `refused`"
    " and why. A retry with the same `Idempotency-Key` gets the first answer and adds nothing."
)


def same_for_all(step_of: Callable[[StepBody], ChildStep]) -> PerformOf:
    return lambda body, _request, _caller: lambda _incident: step_of(body)


def pause_for(body: StepBody) -> ChildStep:
    assert isinstance(body, PauseBody)
    reason_code = body.reason_code
    return lambda complaint, step: complaint.pause(reason_code, step)


def result_for(body: StepBody, request: Request, caller: Principal) -> Callable[[Incident], ChildStep]:
    """The files the result refers to are checked first (422 naming `body.attachments.<i>`), then linked to
    each child as its rectification is taken."""
    assert isinstance(body, BulkResultBody)
    files, complaints = evidence(request), application(request)
    refs = files.refs_for(body.attachments, caller, ("body", "attachments"))

    def keep(complaint: Complaint) -> None:
        unit = complaints.registering_unit(complaint)
        files.link(refs, "complaint", complaint.id, unit, ("body", "attachments"))

    return bulk_result(body, refs, keep)


add_bulk_action(
    "acknowledge",
    StepBody,
    same_for_all(lambda _body: Complaint.acknowledge),
    "First response to every child's customer, with one message (the reason).",
)
add_bulk_action("pause", PauseBody, same_for_all(pause_for), "Pauses every child, e.g. `awaiting_network_fix`.")
add_bulk_action("resume", StepBody, same_for_all(lambda _body: Complaint.resume), "Resumes every paused child.")
add_bulk_action("result", BulkResultBody, result_for, "Records the incident's result on every child.")
add_bulk_action(
    "close", StepBody, same_for_all(lambda _body: Complaint.close), "Closes every child whose feedback is in."
)
