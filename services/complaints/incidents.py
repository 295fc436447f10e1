"""Mass incidents (重大投诉 / 群体性投诉): one cause behind many complaints, handled together.

An incident names its cause, the area it struck (an organisation unit), a time window and a category.
Complaints are linked to it as its children, in batches; a bulk action then takes one step on every
child, each recorded as the child's own event naming the incident, with an answer per child: done,
or refused and why. A retry under the same idempotency key gets the first answer and adds nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from services.complaints.application import (
    ComplaintNotFound,
    ComplaintsApplication,
    ComplaintsError,
    ConcurrentChange,
    NotResponsible,
    OutsideScope,
    StepRequest,
    require_same_request,
)
from services.complaints.domain import AlreadyDone, Complaint, Step, StepRefused
from shared.auth import Principal
from shared.organisation import OrgUnit

INCIDENT_NAMESPACE = uuid.UUID("5d2c7a10-3e8b-4f61-a9d4-0c6b1e7f2a95")
MAX_CHILDREN = 10_000  # an incident's children in all; a batch links at most `BATCH` of them
BATCH = 1000
MAX_CONFLICT_RETRIES = 5
Outcome = Literal["done", "unchanged", "refused"]


@dataclass(frozen=True)
class ChildAnswer:
    complaint_id: str
    outcome: Outcome
    reason: str | None = None  # why it was refused, or why nothing changed


def incident_id_for(request_key: str) -> uuid.UUID:
    return uuid.uuid5(INCIDENT_NAMESPACE, request_key)


class Incident(Aggregate):
    class Opened(Aggregate.Created):
        cause: str
        area: str
        category: str
        window_start: datetime
        window_end: datetime
        opened_by: str
        at: datetime
        request_key: str | None
        request_fingerprint: str | None

    @staticmethod
    def create_id(request_key: str | None, **_: object) -> uuid.UUID:
        """Opened under an idempotency key, its id comes from that key: a retry finds it."""
        return incident_id_for(request_key) if request_key is not None else uuid.uuid4()

    @event(Opened)
    def __init__(
        self,
        cause: str,
        area: str,
        category: str,
        window_start: datetime,
        window_end: datetime,
        opened_by: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        self.cause = cause
        self.area = area
        self.category = category
        self.window_start = window_start
        self.window_end = window_end
        self.opened_by = opened_by
        self.opened_at = at
        self.request_fingerprint = request_fingerprint
        self.children: dict[str, None] = {}  # in the order they were linked
        self.answers: dict[str, tuple[str, list[ChildAnswer]]] = {}  # by request key: fingerprint, answers

    @property
    def unit(self) -> OrgUnit:
        return OrgUnit.parse(self.area)

    def answer_to(self, request_key: str) -> tuple[str, list[ChildAnswer]] | None:
        return self.answers.get(request_key)

    @event("ChildrenChanged")
    def change_children(self, added: list[str], removed: list[str], actor: str, at: datetime) -> None:
        for complaint_id in removed:
            self.children.pop(complaint_id, None)
        self.children.update(dict.fromkeys(added))

    def record_bulk(
        self, action: str, request: StepRequest, answers: list[ChildAnswer], actor: str, at: datetime
    ) -> None:
        self._bulk_acted(
            action=action,
            request_key=request.idempotency_key,
            request_fingerprint=request.fingerprint,
            answers=[asdict(answer) for answer in answers],
            actor=actor,
            at=at,
        )

    @event("BulkActed")
    def _bulk_acted(
        self,
        action: str,
        request_key: str | None,
        request_fingerprint: str | None,
        answers: list[dict[str, Any]],
        actor: str,
        at: datetime,
    ) -> None:
        if request_key is not None and request_fingerprint is not None:
            self.answers[request_key] = (request_fingerprint, [ChildAnswer(**answer) for answer in answers])


class IncidentNotFound(ComplaintsError):
    status_code = 404
    error_type = "not_found"
    field = ("path", "incident_id")


@dataclass(frozen=True)
class OpenIncident:
    cause: str
    area: OrgUnit
    category: str
    window_start: datetime
    window_end: datetime


ChildStep = Callable[[Complaint, Step], None]


class Incidents:
    """The incident use cases, on the complaints service's store: children are complaints of that store."""

    def __init__(self, complaints: ComplaintsApplication) -> None:
        self.complaints = complaints

    def open(self, opening: OpenIncident, request: StepRequest, viewer: Principal) -> tuple[Incident, bool]:
        """A new incident, or the one an earlier request with the same idempotency key opened."""
        if not viewer.can_see(opening.area):
            raise OutsideScope(f"{opening.area} is outside your unit {viewer.unit}", ("body", "area"))
        if request.idempotency_key is not None:
            earlier = self._find(incident_id_for(request.idempotency_key))
            if earlier is not None:
                require_same_request(earlier.request_fingerprint, request.fingerprint)
                return earlier, False
        incident = Incident(
            cause=opening.cause,
            area=str(opening.area),
            category=opening.category,
            window_start=opening.window_start,
            window_end=opening.window_end,
            opened_by=request.actor,
            at=self.complaints.clock(),
            request_key=request.idempotency_key,
            request_fingerprint=request.fingerprint,
        )
        try:
            self.complaints.save(incident)
        except IntegrityError:  # the same key, at the same moment
            return self.open(opening, request, viewer)
        return incident, True

    def get(self, incident_id: uuid.UUID, viewer: Principal) -> Incident:
        incident = self._find(incident_id)
        if incident is None or not viewer.can_see(incident.unit):
            raise IncidentNotFound(f"no incident {incident_id}")
        return incident

    def change_children(
        self,
        incident_id: uuid.UUID,
        added: Sequence[uuid.UUID],
        removed: Sequence[uuid.UUID],
        request: StepRequest,
        viewer: Principal,
    ) -> tuple[Incident, list[ChildAnswer]]:
        """Unlinks, then links complaints, each as its own event; a complaint must be of a hall in the area."""
        for _ in range(MAX_CONFLICT_RETRIES):
            incident = self.get(incident_id, viewer)
            step = self._step(request)
            changed: list[Complaint] = []
            unlink, link = self._unlink(incident), self._link(incident)
            unlinked = [self._take(id_, unlink, step, viewer, changed) for id_ in dict.fromkeys(removed)]
            linked = [self._take(id_, link, step, viewer, changed) for id_ in dict.fromkeys(added)]
            added_now = [answer.complaint_id for answer in linked if answer.outcome == "done"]
            removed_now = [answer.complaint_id for answer in unlinked if answer.outcome == "done"]
            if added_now or removed_now:
                incident.change_children(added=added_now, removed=removed_now, actor=request.actor, at=step.at)
            try:
                self.complaints.save(incident, *changed)
            except IntegrityError:
                continue
            return incident, unlinked + linked
        raise ConcurrentChange("the incident or its children kept changing; retry")

    def _link(self, incident: Incident) -> ChildStep:
        room = [MAX_CHILDREN - len(incident.children)]  # left for new children, as this batch links them

        def link(complaint: Complaint, step: Step) -> None:
            hall = self.complaints.registering_unit(complaint)
            if not incident.unit.contains(hall):
                raise StepRefused(f"its hall {hall} is outside the incident's area {incident.area}")
            if room[0] <= 0 and complaint.incident_id is None:
                raise StepRefused(f"the incident has {MAX_CHILDREN} children, the most it may")
            complaint.link_to_incident(str(incident.id), step)
            room[0] -= 1

        return link

    @staticmethod
    def _unlink(incident: Incident) -> ChildStep:
        return lambda complaint, step: complaint.unlink_from_incident(str(incident.id), step)

    def act(
        self,
        incident_id: uuid.UUID,
        action: str,
        perform: Callable[[Incident], ChildStep],
        request: StepRequest,
        viewer: Principal,
    ) -> tuple[Incident, list[ChildAnswer], bool]:
        """One step (`perform`, for the incident) on every child, saved with the answers; and whether this call
        took it."""
        for _ in range(MAX_CONFLICT_RETRIES):
            incident = self.get(incident_id, viewer)
            if request.idempotency_key is not None and (earlier := incident.answer_to(request.idempotency_key)):
                fingerprint, answers = earlier
                require_same_request(fingerprint, request.fingerprint)
                return incident, answers, False
            step = self._step(request, incident_id=str(incident.id))
            changed: list[Complaint] = []
            step_of_child = perform(incident)
            answers = [
                self._take(uuid.UUID(child), step_of_child, step, viewer, changed) for child in incident.children
            ]
            incident.record_bulk(action, request, answers, request.actor, step.at)
            try:
                self.complaints.save(incident, *changed)
            except IntegrityError:
                continue
            for complaint in changed:
                if complaint.status == "closed":
                    self.complaints.data_keys.note_closed(complaint.id, step.at)
            return incident, answers, True
        raise ConcurrentChange("the incident or its children kept changing; retry")

    def _take(
        self, complaint_id: uuid.UUID, perform: ChildStep, step: Step, viewer: Principal, changed: list[Complaint]
    ) -> ChildAnswer:
        """The step on one child, as its owner would take it; a refusal leaves that child as it was."""
        try:
            complaint = self.complaints.get_complaint(complaint_id, viewer)
            self.complaints.require_owner(complaint, viewer)
            if complaint.version >= self.complaints.max_steps:
                raise StepRefused(f"it holds {complaint.version} events, the most one may")
            perform(complaint, step)
        except AlreadyDone as done:
            return ChildAnswer(str(complaint_id), "unchanged", str(done))
        except (StepRefused, ComplaintNotFound, NotResponsible) as refused:
            return ChildAnswer(str(complaint_id), "refused", str(refused))
        changed.append(complaint)
        return ChildAnswer(str(complaint_id), "done")

    def _step(self, request: StepRequest, incident_id: str | None = None) -> Step:
        return Step(actor=request.actor, reason=request.reason, at=self.complaints.clock(), incident_id=incident_id)

    def _find(self, incident_id: uuid.UUID) -> Incident | None:
        return self.complaints.find(Incident, incident_id)
