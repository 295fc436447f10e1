"""Halls and complaints as event-sourced aggregates. Imports no framework but eventsourcing."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from services.complaints.personal_data import legacy_sealed
from shared.contracts import PAUSE_REASON_BEFORE_CODES, SatisfactionSource
from shared.organisation import LADDER_LEVELS

HALL_ID_NAMESPACE = uuid.UUID("0b8a4f8e-6a53-4b43-9d0c-1f7e0d7c2a11")
NUMBER_ID_NAMESPACE = uuid.UUID("3f6d2b9a-8c41-4e7f-b5a0-6d1c9e2f4a83")


NOTIFICATIONS_NAMESPACE = uuid.UUID("3b0f6d1e-8c57-4a43-9e0b-2a7d5c9f4e61")


def hall_aggregate_id(hall_code: str) -> uuid.UUID:
    """Halls are addressed by the operator's own hall code; one aggregate per code."""
    return uuid.uuid5(HALL_ID_NAMESPACE, hall_code)


def number_aggregate_id(number: str) -> uuid.UUID:
    return uuid.uuid5(NUMBER_ID_NAMESPACE, number)


class ComplaintNumber(Aggregate):
    """Which complaint a number was given to, for numbers given before they were kept with the complaint's data
    key (`customer_keys.number`): read, and made only for numbers adopted from the former table. One aggregate
    per number made it a second event in every registration's transaction."""

    @event("Given")
    def __init__(self, id: uuid.UUID, complaint_id: uuid.UUID) -> None:  # noqa: A002 - eventsourcing's name
        self.complaint_id = complaint_id

    @classmethod
    def given(cls, number: str, complaint_id: uuid.UUID) -> ComplaintNumber:
        return cls(id=number_aggregate_id(number), complaint_id=complaint_id)


class StepRefused(Exception):
    """The complaint is not at a point where this step is allowed; the text says what is missing."""


class AlreadyDone(StepRefused):
    """What the step asks for is already so: a retry, answered as done."""


class SurveyStale(Exception):
    """The survey asks about a result that a newer one has replaced."""


SATISFACTION_SCORES = {"satisfied": 5, "basically_satisfied": 3, "unsatisfied": 1}
# Whom feedback stored before its source was recorded came from: staff, of a unit unknown.
UNRECORDED_FEEDBACK_SOURCE: SatisfactionSource = "other_unit"


@dataclass(frozen=True)
class Notice:
    """What a notification's record holds: which one (`key`), of which trigger, by which channel and template;
    never the address or the words. `failure`: why it could not be delivered, if it was not."""

    key: str  # the trigger event's version in the complaint, and the channel: "7:sms"
    trigger: str
    channel: str
    template: str
    template_version: int
    attempts: int
    at: datetime
    result_at: datetime | None = None  # of a result's notification: the result it told of
    failure: str | None = None


class CustomerNotifications(Aggregate):
    """What a complaint's customer was told, or could not be told. Beside the complaint, not in it, so that
    recording a notification never races with a step of the complaint's loop."""

    class Started(Aggregate.Created):
        complaint_id: uuid.UUID

    @staticmethod
    def create_id(complaint_id: uuid.UUID) -> uuid.UUID:
        return uuid.uuid5(NOTIFICATIONS_NAMESPACE, str(complaint_id))

    @event(Started)
    def __init__(self, complaint_id: uuid.UUID) -> None:
        self.complaint_id = complaint_id
        self.keys: set[str] = set()
        self.results_told: set[datetime] = set()

    def record(self, notice: Notice) -> None:
        """Once per notification: a second record of one is refused as done."""
        if notice.key in self.keys:
            raise AlreadyDone("this notification is already recorded")
        fields = {name: value for name, value in asdict(notice).items() if name not in ("failure", "result_at")}
        if notice.failure is None:
            self._notified(complaint_id=self.complaint_id, result_at=notice.result_at, **fields)
        else:
            self._failed(complaint_id=self.complaint_id, reason=notice.failure, **fields)

    @event("Notified")
    def _notified(
        self,
        complaint_id: uuid.UUID,
        key: str,
        trigger: str,
        channel: str,
        template: str,
        template_version: int,
        attempts: int,
        at: datetime,
        result_at: datetime | None,
    ) -> None:
        self.keys.add(key)
        if result_at is not None:
            self.results_told.add(result_at)

    @event("Failed")
    def _failed(
        self,
        complaint_id: uuid.UUID,
        key: str,
        trigger: str,
        channel: str,
        template: str,
        template_version: int,
        attempts: int,
        at: datetime,
        reason: str,
    ) -> None:
        self.keys.add(key)


@dataclass(frozen=True)
class Step:
    """Who did a step, when and why, and the request that asked for it (for safe retries)."""

    actor: str
    reason: str
    at: datetime
    request_key: str | None = None
    request_fingerprint: str | None = None
    incident_id: str | None = None  # taken for every child of this incident at once (`BULK_STEPS`)

    def fields(self) -> dict[str, Any]:
        """As the event's arguments; `incident_id` only when set, which only the bulk steps' events take."""
        fields = asdict(self)
        if self.incident_id is None:
            del fields["incident_id"]
        return fields


def with_new_files(known: list[dict[str, Any]], added: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The files a subject's steps referred to (as their events say of each), each once, in the order first
    referred to."""
    files: dict[str, dict[str, Any]] = {}
    for file in [*known, *(added or [])]:
        files.setdefault(file["sha256"], file)
    return list(files.values())


class RemembersRequests(Aggregate):
    """Remembers which idempotency key led to which version, so a retried step is answered, not repeated."""

    requests: dict[str, tuple[str, int]]

    def response_to(self, request_key: str) -> tuple[str, int] | None:
        """The fingerprint and resulting version of an earlier request with this key."""
        return self.requests.get(request_key)

    def _remember(self, request_key: str | None, request_fingerprint: str | None) -> None:
        if request_key is not None and request_fingerprint is not None:
            self.requests[request_key] = (request_fingerprint, self.version + 1)


@dataclass(frozen=True)
class HallAttributes:
    """What a hall is at an instant: what changes over its life, besides its code and where it sits."""

    name: str
    level: int
    ownership: str
    closed: bool


@dataclass(frozen=True)
class HallChange:
    """What one change sets from `effective_from` on; None: left as it was."""

    effective_from: datetime
    name: str | None
    level: int | None
    ownership: str | None
    closed: bool | None


class Hall(RemembersRequests):
    """A service hall. Its name, level, ownership and closure change by events, each effective from an instant
    that may lie before or after it was recorded: `attributes_at` says what the hall was at any instant."""

    class Registered(Aggregate.Created):
        hall_code: str
        name: str
        province: str
        city: str
        level: int
        ownership: str
        request_key: str | None = None  # none in registrations stored before halls took idempotency keys
        request_fingerprint: str | None = None

    @staticmethod
    def create_id(hall_code: str, **_: object) -> uuid.UUID:
        return hall_aggregate_id(hall_code)

    @event(Registered)
    def __init__(
        self,
        hall_code: str,
        name: str,
        province: str,
        city: str,
        level: int,
        ownership: str,
        request_key: str | None = None,  # the registering request's, scoped to its caller
        request_fingerprint: str | None = None,
    ) -> None:
        self.hall_code = hall_code
        self.name = name  # as registered; `attributes_at` gives them as changed
        self.province = province
        self.city = city
        self.level = level
        self.ownership = ownership
        self.request_key = request_key
        self.request_fingerprint = request_fingerprint
        self.changes: list[HallChange] = []  # in the order recorded
        self.requests: dict[str, tuple[str, int]] = {}

    def attributes_at(self, instant: datetime) -> HallAttributes:
        """The registration's attributes, with every change effective at or before `instant` applied in order of
        effect (of two effective at once, the later recorded)."""
        attributes = HallAttributes(self.name, self.level, self.ownership, closed=False)
        in_effect = sorted(
            (change for change in self.changes if change.effective_from <= instant), key=lambda c: c.effective_from
        )
        for change in in_effect:
            attributes = HallAttributes(
                name=attributes.name if change.name is None else change.name,
                level=attributes.level if change.level is None else change.level,
                ownership=attributes.ownership if change.ownership is None else change.ownership,
                closed=attributes.closed if change.closed is None else change.closed,
            )
        return attributes

    def closed_from(self, instant: datetime) -> datetime | None:
        """When the closure in force at `instant` took effect, if the hall is closed then."""
        if not self.attributes_at(instant).closed:
            return None
        closures = [c.effective_from for c in self.changes if c.closed and c.effective_from <= instant]
        return max(closures)

    def change(self, change: HallChange, step: Step) -> None:
        before = asdict(self.attributes_at(change.effective_from))
        wanted = {field: value for field, value in asdict(change).items() if field in before and value is not None}
        if all(before[field] == value for field, value in wanted.items()):
            raise StepRefused(f"the hall is already so from {change.effective_from.isoformat()}: nothing to change")
        self._changed(
            hall_code=self.hall_code,
            effective_from=change.effective_from,
            name=change.name,
            level=change.level,
            ownership=change.ownership,
            closed=change.closed,
            **step.fields(),
        )

    @event("Changed")
    def _changed(
        self,
        hall_code: str,
        effective_from: datetime,
        name: str | None,
        level: int | None,
        ownership: str | None,
        closed: bool | None,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        self.changes.append(HallChange(effective_from, name, level, ownership, closed))
        self._remember(request_key, request_fingerprint)


class Complaint(RemembersRequests):
    """A customer complaint and its closed loop: check → communicate → rectify → feedback.

    Its first-ask owner is whoever received it (首问负责) until another unit accepts a
    hand-off, so it is never ownerless: `owner_unit` is None while the registering hall
    owns it. Commands check the rules and raise `StepRefused`; the `_`-prefixed methods
    are the events, which only change state.
    """

    class Registered(Aggregate.Created):
        class_version = 3
        number: str
        hall_code: str
        channel: str
        category: str
        priority: str
        customer_sealed: str  # name, phone and description as given, under the complaint's data key
        description: str  # masked
        received_by: str
        received_at: datetime
        registered_at: datetime
        request_fingerprint: str
        repeat_count: int  # the customer's earlier complaints within the repeat window

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["customer_sealed"] = legacy_sealed(state.pop("customer_name"), state.pop("customer_phone"))

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["repeat_count"] = 0  # not counted before repeats were

    @event(Registered)
    def __init__(
        self,
        id: uuid.UUID,  # noqa: A002 - eventsourcing takes the aggregate id from this name
        number: str,
        hall_code: str,
        channel: str,
        category: str,
        priority: str,
        customer_sealed: str,
        description: str,
        received_by: str,
        received_at: datetime,
        registered_at: datetime,
        request_fingerprint: str,
        repeat_count: int = 0,
    ) -> None:
        self.number = number
        self.repeat_count = repeat_count
        self.hall_code = hall_code
        self.channel = channel
        self.category = category
        self.priority = priority
        self.customer_sealed = customer_sealed
        self.customer_erased = False
        self.description = description
        self.owner = received_by
        self.owner_unit: str | None = None
        self.received_at = received_at
        self.registered_at = registered_at
        self.request_fingerprint = request_fingerprint
        self.status = "open"
        self.pending_hand_off_to: str | None = None
        self.hand_off_units: list[str] = []  # every unit it was handed to: each may read it
        self.acknowledged_at: datetime | None = None
        self.resolved_on_spot = False
        self.checked = False
        self.substantiated: bool | None = None
        self.check_reviewed_by: str | None = None  # the unit above the hall that ruled last
        self.contacts = 0
        self.rectified = False
        self.attachments: list[dict[str, Any]] = []  # the evidence its rectifications referred to, each file once
        self.satisfaction: str | None = None
        self.result_at: datetime | None = None  # when the latest result (rectified, resolved on the spot) came
        self.surveyed_result_at: datetime | None = None  # the result the customer's survey answer was about
        self.callback_needed = False
        self.paused_since: datetime | None = None
        self.pause_reason: str | None = None  # the catalogue's code of the pause under way
        self.escalation_level = 0
        self.reopen_count = 0
        self.incident_id: str | None = None  # the mass incident it is a child of
        self.told_result_at: datetime | None = None  # the result the customer was last told of, by any means
        self.requests: dict[str, tuple[str, int]] = {}

    def told_of_result(self, notifications: CustomerNotifications | None) -> bool:
        """Whether the customer was told the latest result: in person, by a contact since, or a notification."""
        if self.result_at is None:
            return False
        return self.told_result_at == self.result_at or (
            notifications is not None and self.result_at in notifications.results_told
        )

    # Commands: check the rules, then record the event.

    def resolve_on_spot(self, step: Step) -> None:
        self._require_open()
        self._require_no_callback_owed("resolving")
        if self.rectified or self.resolved_on_spot:
            raise StepRefused("the complaint is already resolved; give feedback next")
        self._resolved_on_spot(**step.fields())

    def dispatch(self, to_unit: str, owner_unit: str, step: Step) -> None:
        """`to_unit` and `owner_unit` (the unit owning it now) are organisation unit paths."""
        self._require_open()
        if self.pending_hand_off_to is not None:
            raise StepRefused(f"a hand-off to {self.pending_hand_off_to} is waiting to be accepted")
        if to_unit == owner_unit:
            raise StepRefused(f"{to_unit} already owns the complaint")
        self._dispatched(to_unit=to_unit, **step.fields())

    def accept(self, step: Step) -> None:
        self._require_open()
        if self.pending_hand_off_to is None:
            raise StepRefused("no hand-off is waiting to be accepted; dispatch first")
        self._hand_off_accepted(unit=self.pending_hand_off_to, **step.fields())

    def acknowledge(self, step: Step) -> None:
        self._require_open()
        if self.acknowledged_at is not None:
            raise StepRefused("the customer already had a first response")
        self._acknowledged(**step.fields())

    def check(
        self, substantiated: bool, root_cause: str, root_cause_class: str, responsible_unit: str, step: Step
    ) -> None:
        """`responsible_unit`: a registered hall or a unit above the complaint's hall (the caller makes sure)."""
        self._require_open()
        if self.check_reviewed_by is not None:
            raise StepRefused(f"{self.check_reviewed_by} reviewed the check; only a review can change its ruling")
        self._checked(
            substantiated=substantiated,
            root_cause=root_cause,
            root_cause_class=root_cause_class,
            responsible_unit=responsible_unit,
            **step.fields(),
        )

    def review_check(self, substantiated: bool, reviewing_unit: str, step: Step) -> None:
        """`reviewing_unit`: a unit above the complaint's hall (the caller makes sure). Open or closed alike:
        a ruling may be reviewed after the loop has closed."""
        if not self.checked:
            raise StepRefused("nothing to review: the complaint has not been checked")
        self._check_reviewed(substantiated=substantiated, reviewing_unit=reviewing_unit, **step.fields())

    def contact(self, outcome: str, step: Step) -> None:
        self._require_open()
        if not self.checked:
            raise StepRefused("check the facts before communicating with the customer")
        self._customer_contacted(outcome=outcome, **step.fields())

    def rectify(
        self,
        action: str,
        rectification_owner: str,
        deadline: datetime,
        evidence: list[str],
        step: Step,
        attachments: list[dict[str, Any]] | None = None,
    ) -> None:
        """`attachments`: what the step says of each uploaded file it refers to (hash, size, type, name)."""
        self._require_open()
        self._require_no_callback_owed("rectifying")
        if not self.checked:
            raise StepRefused("check the facts before rectifying")
        if self.contacts == 0:
            raise StepRefused("communicate with the customer before rectifying")
        self._rectified(
            action=action,
            rectification_owner=rectification_owner,
            deadline=deadline,
            evidence=evidence,
            attachments=attachments or [],
            **step.fields(),
        )

    def feedback(self, satisfaction: str, source: SatisfactionSource, step: Step, customer_told: bool = True) -> None:
        """Staff record the customer's verdict; `source` says whether they are of the graded hall.
        `customer_told`: False where the notification policy wants the customer told the result first and
        they were not (see `told_of_result`)."""
        self._require_open()
        self._require_no_callback_owed("asking for feedback")
        if not (self.rectified or self.resolved_on_spot):
            raise StepRefused("rectify (or resolve on the spot) before asking for feedback")
        if not customer_told:
            raise StepRefused("the customer has not been told the result: notify or contact them first")
        if self.satisfaction is not None:
            raise StepRefused("feedback was already given; close or reopen")
        self._feedback_received(
            satisfaction=satisfaction, score=SATISFACTION_SCORES[satisfaction], source=source, **step.fields()
        )

    def answer_survey(self, result_at: datetime, satisfaction: str, step: Step) -> None:
        """The customer's own answer about the result recorded at `result_at`; given once, open or closed,
        whatever staff recorded before."""
        if self.result_at is None or result_at != self.result_at:
            raise SurveyStale("a newer result was recorded since this survey was sent")
        if self.surveyed_result_at == result_at:
            raise StepRefused("the survey was already answered")
        self._feedback_received(
            satisfaction=satisfaction, score=SATISFACTION_SCORES[satisfaction], source="customer", **step.fields()
        )

    def close(self, step: Step) -> None:
        self._require_open()
        self._require_no_callback_owed("closing")
        if self.satisfaction is None:
            raise StepRefused("feedback from the customer is missing")
        if self.satisfaction == "unsatisfied":
            raise StepRefused("the customer was unsatisfied: reopen, call back and rectify before closing")
        if self.pending_hand_off_to is not None:
            raise StepRefused(f"the hand-off to {self.pending_hand_off_to} is still waiting to be accepted")
        self._closed(**step.fields())

    def reopen(self, step: Step) -> None:
        if self.status == "open" and self.satisfaction != "unsatisfied":
            raise StepRefused("only a closed complaint or one with unsatisfied feedback can be reopened")
        self._reopened(**step.fields())

    def callback(self, outcome: str, step: Step) -> None:
        self._require_open()
        if not self.callback_needed:
            raise StepRefused("a supervisor callback is needed only after unsatisfied feedback and a reopen")
        self._callback_made(outcome=outcome, **step.fields())

    def pause(self, reason_code: str, step: Step) -> None:
        """`reason_code`: what it waits for, from the catalogue; the SLA policy says which clocks that stops."""
        self._require_open()
        if self.paused_since is not None:
            raise StepRefused(f"the complaint is already paused ({self.pause_reason}); resume it first")
        self._paused(reason_code=reason_code, **step.fields())

    def reclassify(self, category: str, priority: str, channel: str, step: Step) -> None:
        """Corrects the category, priority and channel it was registered with (all three given, changed or not)."""
        self._require_open()
        if (category, priority, channel) == (self.category, self.priority, self.channel):
            raise StepRefused(f"it is already {category}, {priority}, received by {channel}: nothing to change")
        self._reclassified(
            category=category,
            priority=priority,
            channel=channel,
            previous_category=self.category,
            previous_priority=self.priority,
            previous_channel=self.channel,
            **step.fields(),
        )

    def approve_pause(self, approving_unit: str, step: Step) -> None:
        """`approving_unit`: a unit above the complaint's hall (the caller makes sure)."""
        self._require_open()
        if self.paused_since is None:
            raise StepRefused("the complaint is not waiting on the customer: no pause to approve")
        self._pause_approved(approving_unit=approving_unit, **step.fields())

    def resume(self, step: Step) -> None:
        self._require_open()
        if self.paused_since is None:
            raise StepRefused("the complaint is not paused")
        self._resumed(**step.fields())

    def escalate(self, target_unit: str, level: int, step: Step) -> None:
        """`level`: how far up the hall's ladder `target_unit` stands (the caller works it out): 1 the hall's
        manager, 2 its city, 3 its province, 4 the group. An escalation only climbs."""
        self._require_open()
        if level <= self.escalation_level:
            raise StepRefused(
                f"already escalated to level {self.escalation_level}: escalate to a unit above it"
                if self.escalation_level < LADDER_LEVELS
                else "already escalated to the group: there is no higher level"
            )
        self._escalated(level=level, target_unit=target_unit, **step.fields())

    def link_to_incident(self, incident_id: str, step: Step) -> None:
        """Open or closed alike: a closed child is refused by each bulk step, not by the link."""
        if self.incident_id == incident_id:
            raise AlreadyDone("already a child of this incident")
        if self.incident_id is not None:
            raise StepRefused(f"already a child of incident {self.incident_id}; unlink it there first")
        self._linked_to_incident(incident_id=incident_id, **step.fields())

    def unlink_from_incident(self, incident_id: str, step: Step) -> None:
        if self.incident_id != incident_id:
            raise StepRefused("not a child of this incident")
        self._unlinked_from_incident(incident_id=incident_id, **step.fields())

    def erase_customer(self, step: Step) -> None:
        """Records that the customer's personal data was erased (its key destroyed); open or closed alike."""
        if self.customer_erased:
            raise StepRefused("the customer's personal data is already erased")
        self._customer_erased(**step.fields())

    def _require_open(self) -> None:
        if self.status == "closed":
            raise StepRefused("the complaint is closed; reopen it first")

    def _require_no_callback_owed(self, before: str) -> None:
        """Every path that can end the loop again passes here, so an unsatisfied case is never closed unheard."""
        if self.callback_needed:
            raise StepRefused(f"the customer was unsatisfied: a supervisor callback comes before {before} again")

    # Events: change state only; replayed when the complaint is loaded.

    @event("LinkedToIncident")
    def _linked_to_incident(
        self,
        incident_id: str,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        self.incident_id = incident_id
        self._remember(request_key, request_fingerprint)

    @event("UnlinkedFromIncident")
    def _unlinked_from_incident(
        self,
        incident_id: str,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        self.incident_id = None
        self._remember(request_key, request_fingerprint)

    @event("CustomerErased")
    def _customer_erased(
        self, actor: str, reason: str, at: datetime, request_key: str | None, request_fingerprint: str | None
    ) -> None:
        self.customer_erased = True
        self.attachments = []  # erased with the customer (`Evidence.erase_subject`)
        self._remember(request_key, request_fingerprint)

    @event("ResolvedOnSpot")
    def _resolved_on_spot(
        self, actor: str, reason: str, at: datetime, request_key: str | None, request_fingerprint: str | None
    ) -> None:
        self.resolved_on_spot = True
        self.result_at = at
        self.told_result_at = at  # in person, at the counter
        self._remember(request_key, request_fingerprint)

    @event("Dispatched")
    def _dispatched(
        self,
        to_unit: str,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        self.pending_hand_off_to = to_unit
        self.hand_off_units.append(to_unit)
        self._remember(request_key, request_fingerprint)

    @event("HandOffAccepted")
    def _hand_off_accepted(
        self, unit: str, actor: str, reason: str, at: datetime, request_key: str | None, request_fingerprint: str | None
    ) -> None:
        self.owner = unit
        self.owner_unit = unit
        self.pending_hand_off_to = None
        self._remember(request_key, request_fingerprint)

    @event("Acknowledged")
    def _acknowledged(
        self,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
        incident_id: str | None = None,
    ) -> None:
        self.acknowledged_at = at
        self._remember(request_key, request_fingerprint)

    @event("Checked")
    def _checked(
        self,
        substantiated: bool,
        root_cause: str,
        responsible_unit: str,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
        root_cause_class: str = "unclassified",  # checks stored before classes were
        incident_id: str | None = None,
    ) -> None:
        self.checked = True
        self.substantiated = substantiated
        self._remember(request_key, request_fingerprint)

    @event("CheckReviewed")
    def _check_reviewed(
        self,
        substantiated: bool,
        reviewing_unit: str,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        self.substantiated = substantiated
        self.check_reviewed_by = reviewing_unit
        self._remember(request_key, request_fingerprint)

    @event("CustomerContacted")
    def _customer_contacted(
        self,
        outcome: str,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
        incident_id: str | None = None,
    ) -> None:
        self.contacts += 1
        self.told_result_at = self.result_at
        self._remember(request_key, request_fingerprint)

    @event("Rectified")
    def _rectified(
        self,
        action: str,
        rectification_owner: str,
        deadline: datetime,
        evidence: list[str],
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
        incident_id: str | None = None,
        attachments: list[dict[str, Any]] | None = None,  # None: recorded before steps had attachments
    ) -> None:
        self.rectified = True
        self.result_at = at
        self.attachments = with_new_files(self.attachments, attachments)
        self._remember(request_key, request_fingerprint)

    @event("FeedbackReceived")
    def _feedback_received(
        self,
        satisfaction: str,
        score: int,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
        source: SatisfactionSource = UNRECORDED_FEEDBACK_SOURCE,
    ) -> None:
        self.satisfaction = satisfaction
        if source == "customer":
            self.surveyed_result_at = self.result_at
        self._remember(request_key, request_fingerprint)

    @event("Closed")
    def _closed(
        self,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
        incident_id: str | None = None,
    ) -> None:
        self.status = "closed"
        self.paused_since = None
        self.pause_reason = None
        self._remember(request_key, request_fingerprint)

    @event("Reopened")
    def _reopened(
        self, actor: str, reason: str, at: datetime, request_key: str | None, request_fingerprint: str | None
    ) -> None:
        self.callback_needed = self.callback_needed or self.satisfaction == "unsatisfied"
        self.status = "open"
        self.rectified = False
        self.resolved_on_spot = False
        self.satisfaction = None
        self.reopen_count += 1
        self._remember(request_key, request_fingerprint)

    @event("CallbackMade")
    def _callback_made(
        self,
        outcome: str,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        self.callback_needed = False
        self._remember(request_key, request_fingerprint)

    @event("Paused")
    def _paused(
        self,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
        reason_code: str = PAUSE_REASON_BEFORE_CODES,
        incident_id: str | None = None,
    ) -> None:
        self.paused_since = at
        self.pause_reason = reason_code
        self._remember(request_key, request_fingerprint)

    @event("Reclassified")
    def _reclassified(
        self,
        category: str,
        priority: str,
        channel: str,
        previous_category: str,
        previous_priority: str,
        previous_channel: str,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        self.category, self.priority, self.channel = category, priority, channel
        self._remember(request_key, request_fingerprint)

    @event("PauseApproved")
    def _pause_approved(
        self,
        approving_unit: str,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        self._remember(request_key, request_fingerprint)

    @event("Resumed")
    def _resumed(
        self,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
        incident_id: str | None = None,
    ) -> None:
        self.paused_since = None
        self.pause_reason = None
        self._remember(request_key, request_fingerprint)

    @event("Escalated")
    def _escalated(
        self,
        level: int,
        target_unit: str,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        self.escalation_level = level
        self._remember(request_key, request_fingerprint)
