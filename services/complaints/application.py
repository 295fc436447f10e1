"""Use cases of the complaints service: load, call the aggregate, save.

Registering a complaint and the public progress page are coroutines: intake waits on the group
commit without a thread of its own, and both read their stores on the event loop. The other use
cases are plain functions, which FastAPI runs in its thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, TypeVar

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, AggregateEvent
from eventsourcing.persistence import IntegrityError

from services.complaints.attachments import AttachmentRef
from services.complaints.checklist import UnknownChecklist, load_checklist
from services.complaints.domain import (
    AlreadyDone,
    Complaint,
    ComplaintNumber,
    CustomerNotifications,
    Hall,
    HallChange,
    Notice,
    RemembersRequests,
    Step,
    StepRefused,
    SurveyStale,
    hall_aggregate_id,
    number_aggregate_id,
    with_new_files,
)
from services.complaints.group_commit import BatchStore, GroupCommitter
from services.complaints.inspections import Inspection, RectificationOrder, order_id_for
from services.complaints.notifications import policy_at
from services.complaints.numbers import Serials, complaint_number
from services.complaints.personal_data import (
    CustomerData,
    CustomersComplaint,
    DataKey,
    DataKeys,
    MasterKey,
    mask_identifiers,
    seal,
    unseal,
)
from services.complaints.repositories import LegacyNumbers, SerialBlocks, VerificationAttempts
from services.complaints.surveys import SurveyTicket
from shared.auth import Principal
from shared.catalog import catalog
from shared.clock import Clock, system_clock
from shared.contracts import SatisfactionSource
from shared.errors import ServiceError
from shared.organisation import OrgUnit, escalation_level
from shared.tracing import StoresTraceContext

MAX_LATE_SUBMISSION = timedelta(days=30)
RECORD_ATTEMPTS = 5  # of recording a notification on a complaint that steps keep changing
HALL_CACHE_SECONDS = 5
MAX_RELATED = 100  # the most related complaints one answer lists
REPEATS_NAMED = 20  # the most earlier complaints a repeat complaint names, the newest
DEFAULT_RECTIFICATION_TIME = timedelta(days=3)
IDEMPOTENCY_NAMESPACE = uuid.UUID("9a3e1c55-0e43-4d5b-8c1b-4b1f6f0f2d70")


class ComplaintsError(ServiceError):
    pass


class HallAlreadyRegistered(ComplaintsError):
    error_type = "hall_exists"
    field = ("body", "hall_id")


class OutsideScope(ComplaintsError):
    status_code = 403
    error_type = "outside_scope"
    field = ("body", "hall_id")


class HallClosed(ComplaintsError):
    """A complaint received after its hall closed: it belongs to the hall that took the customer over."""

    status_code = 422
    error_type = "hall_closed"
    field = ("body", "hall_id")


class HallNotFound(ComplaintsError):
    status_code = 404
    error_type = "not_found"
    field = ("path", "hall_id")


class UnknownHall(ComplaintsError):
    status_code = 422
    error_type = "unknown_hall"
    field = ("body", "hall_id")


class ComplaintNotFound(ComplaintsError):
    status_code = 404
    error_type = "not_found"
    field = ("path", "complaint_id")


class ReceivedAtOutOfRange(ComplaintsError):
    status_code = 422
    error_type = "received_at_out_of_range"
    field = ("body", "received_at")


class NotResponsible(ComplaintsError):
    """The caller may read the complaint but another unit is responsible for this step."""

    status_code = 403
    error_type = "not_responsible"
    field = ("path", "complaint_id")


class UnknownUnit(ComplaintsError):
    status_code = 422
    error_type = "unknown_unit"
    field = ("body", "to_unit")


class StepNotAllowed(ComplaintsError):
    error_type = "step_not_allowed"


class SurveyNotFound(ComplaintsError):
    status_code = 404
    error_type = "not_found"
    field = ("path", "token")


class SurveyGone(ComplaintsError):
    """Expired, or about a result that a newer one replaced."""

    status_code = 410
    error_type = "survey_gone"
    field = ("path", "token")


class ConcurrentChange(ComplaintsError):
    error_type = "concurrent_change"


class InspectionNotFound(ComplaintsError):
    status_code = 404
    error_type = "not_found"
    field = ("path", "inspection_id")


class OrderNotFound(ComplaintsError):
    status_code = 404
    error_type = "not_found"
    field = ("path", "order_id")


class BadChecklistEntry(ComplaintsError):
    status_code = 422
    error_type = "bad_checklist_entry"


class PublicComplaintNotFound(ComplaintsError):
    status_code = 404
    error_type = "not_found"
    field = ("path", "number")


class TooManyAttempts(ComplaintsError):
    status_code = 429
    error_type = "too_many_attempts"
    field = ("body", "phone_last_four")

    def __init__(self, retry_after: timedelta) -> None:
        seconds = max(int(retry_after.total_seconds()) + 1, 1)
        super().__init__(f"too many wrong attempts from your address; try again in {seconds} s")
        self.headers = {"Retry-After": str(seconds)}


class IdempotencyKeyReused(ComplaintsError):
    status_code = 422
    error_type = "idempotency_key_reused"
    field = ("header", "Idempotency-Key")


class Registration(NamedTuple):
    complaint: Complaint
    created: bool  # False: a retry under the first call's idempotency key
    repeat_of: list[str]  # the numbers of the earlier complaints that made it a repeat, as the caller may see


@dataclass(frozen=True)
class RegisterHall:
    hall_code: str
    name: str
    province: str
    city: str
    level: int
    ownership: str


@dataclass(frozen=True)
class RegisterComplaint:
    hall_code: str
    channel: str
    category: str
    priority: str
    customer_name: str
    customer_phone: str
    description: str
    received_by: str  # the first-ask owner (首问负责)
    received_at: datetime | None = None
    customer_email: str | None = None
    customer_wechat_openid: str | None = None

    def fingerprint(self, master_key: MasterKey) -> str:
        """Of the request's content, the customer's data by a keyed digest: the fingerprint is stored in
        events, where a plain hash of a phone number could be found again by trying every number."""
        content = dict(vars(self))  # flat, unlike asdict's deep copy of every value: the same JSON, cheaper
        addresses = [content.pop(name) for name in ("customer_name", "customer_phone", "customer_email")]
        addresses.append(content.pop("customer_wechat_openid"))
        # Addresses not given leave the digest as it was before they could be: retries across an upgrade match.
        customer = "\x00".join(address for address in addresses if address is not None)
        return fingerprint_of(content, master_key.keyed_digest(customer).hex())


Target = TypeVar("Target", bound=RemembersRequests)
Found = TypeVar("Found", bound=Aggregate)


def unit_of(hall: Hall) -> OrgUnit:
    return OrgUnit.of_hall(hall.province, hall.city, hall.hall_code)


def caller_key(kind: str, caller: Principal, key: str) -> str:
    """An idempotency key as kept: the caller's (its subject and unit) and of one kind of request, so that
    no caller can replay or block another's, and no two kinds of request share a key."""
    return "\x00".join((kind, caller.subject, str(caller.unit), key))  # NUL: refused in every key sent


def require_same_request(first_fingerprint: str | None, this_fingerprint: str | None) -> None:
    """A repeated idempotency key must come with the same request it first came with."""
    if first_fingerprint != this_fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")


def fingerprint_of(*parts: object) -> str:
    """Identifies a request's content, to tell a retry from a reused idempotency key."""
    canonical = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class FindingInput:
    item_id: str
    description: str
    deadline: datetime | None = None
    attachments: tuple[AttachmentRef, ...] = ()  # the files it refers to, as the inspector may see them


@dataclass(frozen=True)
class HighlightInput:
    description: str
    points: float


@dataclass(frozen=True)
class RecordInspection:
    hall_code: str
    inspection_type: str
    failed_items: frozenset[str]
    findings: tuple[FindingInput, ...]
    checklist_version: str | None = None
    innovation_rating: float | None = None
    highlights: tuple[HighlightInput, ...] = ()

    def fingerprint(self) -> str:
        """Identifies the request's content, the same in every process: the failed items sorted, and a
        finding's files by id (their names may change with a new upload, the request does not)."""
        content = asdict(self)
        content["failed_items"] = sorted(self.failed_items)
        for finding in content["findings"]:
            finding["attachments"] = [ref["sha256"] for ref in finding["attachments"]]
        return fingerprint_of(content)


# Keeps the files a finding refers to as long as its order: (the finding's index, its order, the hall's unit).
KeepEvidence = Callable[[int, RectificationOrder, OrgUnit], None]


@dataclass(frozen=True)
class Reclassification:
    """What to correct; None: as it is."""

    category: str | None
    priority: str | None
    channel: str | None


@dataclass(frozen=True)
class StepRequest:
    """Who asks for a step and why; the key and fingerprint make a retry safe."""

    actor: str
    reason: str
    idempotency_key: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class CheckFinding:
    """What a check found (核查): whether the complaint holds, its root cause and class, and who is responsible."""

    substantiated: bool
    root_cause: str
    root_cause_class: str
    responsible_unit: str


class ComplaintsApplication(StoresTraceContext):
    name = "complaints"

    def __init__(
        self,
        env: Mapping[str, str],
        serial_blocks: SerialBlocks,
        verification_attempts: VerificationAttempts,
        master_key: MasterKey,
        data_keys: Callable[[ComplaintsApplication], DataKeys],
        batches: Callable[[ComplaintsApplication], BatchStore],
        clock: Clock = system_clock,
        max_steps: int = 500,
        repeat_window: timedelta = timedelta(days=30),
    ) -> None:
        """`max_steps`: the most events a complaint or order may hold, so that no caller grows one without end.
        `data_keys`: the customers' data keys, kept beside this application's events; `batches`: where new
        complaints are committed, with their keys, in group commits. `repeat_window`: how
        far back a customer's earlier complaints make a new one a repeat (重复投诉)."""
        super().__init__(env)
        self.clock = clock
        self.max_steps = max_steps
        self.repeat_window = repeat_window
        self._serials = Serials(serial_blocks)
        self._verification_attempts = verification_attempts
        self._master_key = master_key
        self.data_keys = data_keys(self)
        self._group_commit = GroupCommitter(batches(self))
        self._halls: dict[str, tuple[Hall, float]] = {}  # each with when it was loaded (`time.monotonic`)
        self._erased_with_customer: list[Callable[[uuid.UUID], object]] = []

    def also_erase(self, erase: Callable[[uuid.UUID], object]) -> None:
        """`erase(complaint_id)` runs on every erasure of a customer's data (asked for, or after retention), before
        the key goes, and again on a repeated erasure: it must be idempotent. The complaint's attachments go so."""
        self._erased_with_customer.append(erase)

    async def registrations_committed(self) -> None:
        """Returns once every complaint being registered is committed or refused: before the store closes."""
        await self._group_commit.committed()

    def register_hall(
        self, command: RegisterHall, viewer: Principal, idempotency_key: str | None = None
    ) -> tuple[Hall, bool]:
        """The hall and whether this call registered it: a retry with the caller's same key and body gets
        the hall back; registering a code twice otherwise is a 409."""
        if not viewer.can_see(OrgUnit.of_hall(command.province, command.city, command.hall_code)):
            raise OutsideScope(f"hall {command.hall_code!r} is outside your organisation unit {viewer.unit}")
        key = None if idempotency_key is None else caller_key("hall", viewer, idempotency_key)
        fingerprint = fingerprint_of(asdict(command))
        hall = Hall(**asdict(command), request_key=key, request_fingerprint=fingerprint)
        try:
            self.save(hall)
        except IntegrityError:
            existing = self._find_hall(command.hall_code)
            if key is not None and existing is not None and existing.request_key == key:
                require_same_request(existing.request_fingerprint, fingerprint)
                return existing, False
            # Codes are the operator's, unique across the group: say it is taken, and nothing of the hall.
            raise HallAlreadyRegistered(f"the hall code {command.hall_code!r} is taken") from None
        return hall, True

    def get_hall(self, hall_code: str, viewer: Principal) -> Hall:
        """Outside the viewer's unit a hall is as good as absent: no leak of its existence."""
        hall = self._find_hall(hall_code)
        if hall is None or not viewer.can_see(unit_of(hall)):
            raise HallNotFound(f"no hall {hall_code!r}")
        return hall

    def known_hall(self, hall_code: str) -> Hall:
        """A hall that events refer to, so it exists."""
        hall = self._find_hall(hall_code)
        if hall is None:
            raise LookupError(f"hall {hall_code!r} is referred to but was never registered")
        return hall

    async def hall_referred_to(self, hall_code: str) -> Hall:
        """`known_hall`, loaded off the event loop unless cached."""
        if self._hall_cached(hall_code):
            return self.known_hall(hall_code)
        return await asyncio.to_thread(self.known_hall, hall_code)

    def _find_hall(self, hall_code: str) -> Hall | None:
        """Halls change seldom (a new level, name or owner, a closure): each is loaded again after
        `HALL_CACHE_SECONDS`, so another replica's change is seen within that time."""
        if not self._hall_cached(hall_code):
            hall = self.find(Hall, hall_aggregate_id(hall_code))
            if hall is None:
                return None
            self._halls[hall_code] = (hall, time.monotonic())
        return self._halls[hall_code][0]

    def _hall_cached(self, hall_code: str) -> bool:
        cached = self._halls.get(hall_code)
        return cached is not None and time.monotonic() - cached[1] < HALL_CACHE_SECONDS

    def change_hall(
        self, hall_code: str, change: HallChange, request: StepRequest, viewer: Principal
    ) -> tuple[Hall, bool]:
        """A change of the hall's name, level, ownership or closure, effective from an instant; by a unit that
        sees the hall."""

        def load() -> Hall:
            hall = self.find(Hall, hall_aggregate_id(hall_code))
            if hall is None or not viewer.can_see(unit_of(hall)):
                raise HallNotFound(f"no hall {hall_code!r}")
            return hall

        hall, changed = self._take_step(load, request, lambda hall, step: hall.change(change, step))
        self._halls[hall_code] = (hall, time.monotonic())
        return hall, changed

    async def register_complaint(
        self, command: RegisterComplaint, viewer: Principal, idempotency_key: str | None = None
    ) -> Registration:
        """The complaint, whether this call created it, and the earlier complaints that made it a repeat.

        With an idempotency key, a repeated request returns the complaint the
        first one created, and the same key with different content is refused.
        """
        fingerprint = command.fingerprint(self._master_key)
        if idempotency_key is None:
            complaint_id = uuid.uuid4()
        else:
            complaint_id = uuid.uuid5(IDEMPOTENCY_NAMESPACE, caller_key("complaint", viewer, idempotency_key))
            # Asked on the event loop first: a new key, the common case, then costs no thread and no aggregate load.
            if await self._group_commit.is_stored(complaint_id):
                existing = await asyncio.to_thread(self.find, Complaint, complaint_id)
                if existing is not None:
                    return await self._registered_before(self._replayed(existing, fingerprint), viewer)

        now = self.clock()
        received_at = command.received_at or now
        if received_at > now:
            raise ReceivedAtOutOfRange("received_at is in the future")
        if now - received_at > MAX_LATE_SUBMISSION:
            raise ReceivedAtOutOfRange(f"received_at is more than {MAX_LATE_SUBMISSION.days} days old")
        try:
            if self._hall_cached(command.hall_code):
                hall = self.get_hall(command.hall_code, viewer)  # loaded before: no I/O
            else:
                hall = await asyncio.to_thread(self.get_hall, command.hall_code, viewer)
        except HallNotFound:
            raise UnknownHall(f"no hall {command.hall_code!r} is registered") from None
        if (closed_from := hall.closed_from(received_at)) is not None:
            raise HallClosed(f"hall {command.hall_code!r} is closed from {closed_from.isoformat()}")

        phone_digest = self._master_key.phone_digest(command.customer_phone)
        earlier = await self.data_keys.history_of_phone(
            phone_digest, received_at - self.repeat_window, received_at, REPEATS_NAMED
        )
        number = complaint_number(now, await self._serials.take())
        identifiers = (command.customer_name, command.customer_phone, command.customer_email or "")
        description = mask_identifiers(command.description, identifiers)
        data_key, wrapped = self._master_key.new_data_key(complaint_id)
        customer = CustomerData(
            command.customer_name,
            command.customer_phone,
            command.description if description != command.description else None,
            command.customer_email,
            command.customer_wechat_openid,
        )
        complaint = Complaint(
            id=complaint_id,
            number=number,
            hall_code=command.hall_code,
            channel=command.channel,
            category=command.category,
            priority=command.priority,
            customer_sealed=seal(data_key, complaint_id, customer),
            description=description,
            received_by=command.received_by,
            received_at=received_at,
            registered_at=now,
            request_fingerprint=fingerprint,
            repeat_count=earlier.count,
        )
        try:
            await self._group_commit.save(
                complaint,
                data_keys=[DataKey(complaint_id, wrapped, phone_digest, received_at, number, command.hall_code)],
            )
        except IntegrityError:
            # A concurrent request with the same idempotency key won the race.
            winner = await asyncio.to_thread(self.get_complaint, complaint_id, viewer)
            return await self._registered_before(self._replayed(winner, fingerprint), viewer)
        return Registration(complaint, True, self._visible_numbers(earlier.newest, viewer))

    def act(
        self,
        complaint_id: uuid.UUID,
        request: StepRequest,
        perform: Callable[[Complaint, Step], None],
        viewer: Principal,
    ) -> tuple[Complaint, bool]:
        """One step of a complaint's closed loop, by its owner's unit (or one above it); returns the
        complaint and whether this call changed it."""

        def perform_as_owner(complaint: Complaint, step: Step) -> None:
            self.require_owner(complaint, viewer)
            perform(complaint, step)

        return self._take_step(lambda: self.get_complaint(complaint_id, viewer), request, perform_as_owner)

    def require_owner(self, complaint: Complaint, viewer: Principal) -> None:
        """The steps of the loop are the owner's unit's to take, or a unit's above it."""
        owner = self.owner_unit(complaint)
        if not viewer.can_see(owner):
            raise NotResponsible(f"{owner} owns the complaint; only it or a unit above it can take this step")

    def dispatch(
        self, complaint_id: uuid.UUID, to_unit: str, request: StepRequest, viewer: Principal
    ) -> tuple[Complaint, bool]:
        """Hands the complaint to a registered hall or to a unit above its hall (电子派单)."""

        def perform(complaint: Complaint, step: Step) -> None:
            complaint.dispatch(str(self._unit_for(complaint, to_unit)), str(self.owner_unit(complaint)), step)

        return self.act(complaint_id, request, perform, viewer)

    def give_feedback(
        self, complaint_id: uuid.UUID, satisfaction: str, request: StepRequest, viewer: Principal
    ) -> tuple[Complaint, bool]:
        """Staff record the customer's verdict, noted as the graded hall's own when they belong to it."""

        def perform(complaint: Complaint, step: Step) -> None:
            source: SatisfactionSource = (
                "graded_hall" if self.registering_unit(complaint).contains(viewer.unit) else "other_unit"
            )
            told = not policy_at(step.at).feedback_requires_customer_told or complaint.told_of_result(
                self._notifications_of(complaint.id)
            )
            complaint.feedback(satisfaction, source, step, customer_told=told)

        return self.act(complaint_id, request, perform, viewer)

    def answer_survey(self, ticket: SurveyTicket, satisfaction: str) -> Complaint:
        """The customer's answer to the survey `ticket` was issued for; no credentials, no personal data."""
        if self.clock() >= ticket.expires_at:
            raise SurveyGone(f"the survey expired at {ticket.expires_at.isoformat()}")

        def load() -> Complaint:
            complaint = self.find(Complaint, ticket.complaint_id)
            if complaint is None:
                raise SurveyNotFound("no such survey")
            return complaint

        def perform(complaint: Complaint, step: Step) -> None:
            try:
                complaint.answer_survey(ticket.result_at, satisfaction, step)
            except SurveyStale as stale:
                raise SurveyGone(str(stale)) from None

        request = StepRequest(actor="customer", reason="the customer's survey answer")
        answered, _ = self._take_step(load, request, perform)
        return answered

    def review_check(
        self, complaint_id: uuid.UUID, substantiated: bool, request: StepRequest, viewer: Principal
    ) -> tuple[Complaint, bool]:
        """A unit above the complaint's hall rules again on the hall's check (its city, province or the group)."""

        def perform(complaint: Complaint, step: Step) -> None:
            self._require_above_hall(complaint, viewer, "review its check")
            complaint.review_check(substantiated, str(viewer.unit), step)

        return self._take_step(lambda: self.get_complaint(complaint_id, viewer), request, perform)

    def approve_pause(self, complaint_id: uuid.UUID, request: StepRequest, viewer: Principal) -> tuple[Complaint, bool]:
        """A unit above the complaint's hall lets its pause stop the SLA clocks past the policy's cap."""

        def perform(complaint: Complaint, step: Step) -> None:
            self._require_above_hall(complaint, viewer, "approve its long pause")
            complaint.approve_pause(str(viewer.unit), step)

        return self._take_step(lambda: self.get_complaint(complaint_id, viewer), request, perform)

    def reclassify(
        self, complaint_id: uuid.UUID, change: Reclassification, request: StepRequest, viewer: Principal
    ) -> tuple[Complaint, bool]:
        """Corrects what it was registered as, by its owner; a lower priority only by a unit above the hall,
        since it loosens the hall's own deadlines."""

        def perform(complaint: Complaint, step: Step) -> None:
            priority = change.priority or complaint.priority
            priorities = catalog().priorities
            if priorities.index(priority) < priorities.index(complaint.priority):
                self._require_above_hall(complaint, viewer, f"lower its priority below {complaint.priority}")
            complaint.reclassify(
                change.category or complaint.category, priority, change.channel or complaint.channel, step
            )

        return self.act(complaint_id, request, perform, viewer)

    def _require_above_hall(self, complaint: Complaint, viewer: Principal, to: str) -> None:
        """Rulings on what grades the hall (its check, its pauses) are not the hall's own to make."""
        hall = self.registering_unit(complaint)
        if not viewer.can_see(hall) or viewer.unit == hall:
            raise NotResponsible(f"only a unit above {hall} can {to}")

    def accept(self, complaint_id: uuid.UUID, request: StepRequest, viewer: Principal) -> tuple[Complaint, bool]:
        """The receiving unit (or one above it) takes a hand-off over and becomes the owner."""

        def perform(complaint: Complaint, step: Step) -> None:
            receiving = complaint.pending_hand_off_to
            if receiving is not None and not viewer.can_see(self._unit_named(receiving, complaint)):
                raise NotResponsible(f"the hand-off is to {receiving}; only it or a unit above it can accept")
            complaint.accept(step)

        return self._take_step(lambda: self.get_complaint(complaint_id, viewer), request, perform)

    def act_on_order(
        self,
        order_id: uuid.UUID,
        request: StepRequest,
        perform: Callable[[RectificationOrder, Step], None],
        viewer: Principal,
    ) -> tuple[RectificationOrder, bool]:
        """One step of a rectification order's loop; returns the order and whether this call changed it."""
        return self._take_step(lambda: self.get_order(order_id, viewer), request, perform)

    def _take_step(
        self, load: Callable[[], Target], request: StepRequest, perform: Callable[[Target, Step], None]
    ) -> tuple[Target, bool]:
        """A step already taken under the same idempotency key returns the target as that step
        left it. Of two writers racing on one target, one wins and the other gets
        `ConcurrentChange` rather than a lost update."""
        target = load()
        if replayed := self._earlier_response(target, request):
            return replayed, False
        if target.version >= self.max_steps:
            raise StepNotAllowed(f"it holds {target.version} events, the most one may: no further step is taken")
        step = Step(
            actor=request.actor,
            reason=request.reason,
            at=self.clock(),
            request_key=request.idempotency_key,
            request_fingerprint=request.fingerprint,
        )
        was_closed = isinstance(target, Complaint) and target.status == "closed"
        try:
            perform(target, step)
        except StepRefused as refused:
            raise StepNotAllowed(str(refused)) from None
        try:
            self.save(target)
        except IntegrityError:
            if replayed := self._earlier_response(load(), request):
                return replayed, False
            raise ConcurrentChange("it was changed at the same moment; reload it and retry") from None
        if isinstance(target, Complaint) and (target.status == "closed") != was_closed:
            self.data_keys.note_closed(target.id, step.at if target.status == "closed" else None)
        return target, True

    def _earlier_response(self, target: Target, request: StepRequest) -> Target | None:
        if request.idempotency_key is None:
            return None
        earlier = target.response_to(request.idempotency_key)
        if earlier is None:
            return None
        fingerprint, version = earlier
        require_same_request(fingerprint, request.fingerprint)
        as_it_was: Target = self.repository.get(target.id, version=version)
        return as_it_was

    def record_inspection(
        self,
        command: RecordInspection,
        viewer: Principal,
        idempotency_key: str | None = None,
        keep_evidence: KeepEvidence | None = None,
    ) -> tuple[Inspection, bool]:
        """Scores the hall against the checklist and opens one rectification order per finding, with the files
        the finding refers to; `keep_evidence` is called for each order with files, before anything is saved."""
        try:
            checklist = load_checklist(command.checklist_version)
        except UnknownChecklist as unknown:
            raise BadChecklistEntry(str(unknown), ("body", "checklist_version")) from None
        items = checklist.items()
        for index, finding in enumerate(command.findings):
            if finding.item_id not in items:
                raise BadChecklistEntry(f"no item {finding.item_id!r}", ("body", "findings", index, "item_id"))
        for item_id in sorted(command.failed_items - items.keys()):
            raise BadChecklistEntry(f"no item {item_id!r} in checklist {checklist.version}", ("body", "failed_items"))
        try:
            hall = self.get_hall(command.hall_code, viewer)
        except HallNotFound:
            raise UnknownHall(f"no hall {command.hall_code!r} is registered") from None
        fingerprint = command.fingerprint()
        inspection_id = (
            uuid.uuid4()
            if idempotency_key is None
            else uuid.uuid5(IDEMPOTENCY_NAMESPACE, caller_key("inspection", viewer, idempotency_key))
        )
        if (earlier := self.find(Inspection, inspection_id)) is not None:
            require_same_request(earlier.request_fingerprint, fingerprint)
            return earlier, False
        now = self.clock()
        orders = [
            RectificationOrder(
                id=order_id_for(inspection_id, index),
                inspection_id=inspection_id,
                hall_code=hall.hall_code,
                item_id=finding.item_id,
                points=items[finding.item_id].points,
                description=finding.description,
                deadline=finding.deadline or now + DEFAULT_RECTIFICATION_TIME,
                at=now,
                attachments=with_new_files([], [ref.as_event_field() for ref in finding.attachments]),
            )
            for index, finding in enumerate(command.findings)
        ]
        for index, order in enumerate(orders):
            if order.attachments and keep_evidence is not None:
                keep_evidence(index, order, unit_of(hall))
        inspection = Inspection(
            id=inspection_id,
            hall_code=hall.hall_code,
            inspection_type=command.inspection_type,
            inspector=viewer.subject,
            checklist_version=checklist.version,
            score=sum(item.points for item_id, item in items.items() if item_id not in command.failed_items),
            max_score=sum(item.points for item in items.values()),
            results=[{"item_id": item_id, "passed": item_id not in command.failed_items} for item_id in items],
            findings=[{"order_id": order.id, "item_id": order.item_id, "points": order.points} for order in orders],
            innovation_rating=command.innovation_rating,
            highlights=[asdict(highlight) for highlight in command.highlights],
            at=now,
            request_fingerprint=fingerprint,
        )
        try:
            self.save(inspection, *orders)
        except IntegrityError:
            return self.get_inspection(inspection_id, viewer), False
        return inspection, True

    def get_inspection(self, inspection_id: uuid.UUID, viewer: Principal) -> Inspection:
        inspection = self.find(Inspection, inspection_id)
        if inspection is None or not self._visible(inspection.hall_code, viewer):
            raise InspectionNotFound(f"no inspection {inspection_id}")
        return inspection

    def deciding_unit_for_order(self, order_id: uuid.UUID, viewer: Principal) -> OrgUnit:
        """The viewer's unit, if it is above the order's hall: a hall does not decide its own appeal."""
        hall = unit_of(self.known_hall(self.get_order(order_id, viewer).hall_code))
        if not viewer.can_see(hall) or viewer.unit == hall:
            raise NotResponsible(f"only a unit above {hall} can decide its appeal")
        return viewer.unit

    def get_order(self, order_id: uuid.UUID, viewer: Principal) -> RectificationOrder:
        order = self.find(RectificationOrder, order_id)
        if order is None or not self._visible(order.hall_code, viewer):
            raise OrderNotFound(f"no rectification order {order_id}")
        return order

    def find(self, kind: type[Found], aggregate_id: uuid.UUID) -> Found | None:
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, kind) else None

    def _visible(self, hall_code: str, viewer: Principal) -> bool:
        hall = self._find_hall(hall_code)
        return hall is not None and viewer.can_see(unit_of(hall))

    def get_complaint(self, complaint_id: uuid.UUID, viewer: Principal) -> Complaint:
        """Seen by the registering hall and every unit it was handed to (the owner's among them), and by units
        above them."""
        complaint = self.find(Complaint, complaint_id)
        if complaint is None or not any(viewer.can_see(unit) for unit in self._units_involved(complaint)):
            raise ComplaintNotFound(f"no complaint {complaint_id}")
        return complaint

    def _units_involved(self, complaint: Complaint) -> list[OrgUnit]:
        return [
            self.registering_unit(complaint),
            *(self._unit_named(unit, complaint) for unit in complaint.hand_off_units),
        ]

    def registering_unit(self, complaint: Complaint) -> OrgUnit:
        return unit_of(self.known_hall(complaint.hall_code))

    def owner_unit(self, complaint: Complaint) -> OrgUnit:
        """The unit that owns the complaint now: the registering hall until a hand-off is accepted."""
        if complaint.owner_unit is None:
            return self.registering_unit(complaint)
        return self._unit_named(complaint.owner_unit, complaint)

    def _unit_named(self, name: str, complaint: Complaint) -> OrgUnit:
        """A unit recorded on a complaint. Hand-offs recorded before units were validated may name a
        hall by its code, or something unknown: that stays with the registering hall."""
        with contextlib.suppress(ValueError):
            return OrgUnit.parse(name)
        hall = self._find_hall(name)
        return unit_of(hall) if hall is not None else self.registering_unit(complaint)

    def unit_named_in_request(self, ref: str, location: tuple[str, str]) -> OrgUnit:
        """A registered hall, by code or path, or a unit above halls (a province, a city, the group)."""
        if not ref.startswith("group"):
            hall = self._find_hall(ref)
            if hall is None:
                raise UnknownUnit(f"no hall {ref!r} is registered", location)
            return unit_of(hall)
        try:
            unit = OrgUnit.parse(ref)
        except ValueError as invalid:
            raise UnknownUnit(str(invalid), location) from None
        if unit.level == "hall":
            hall = self._find_hall(unit.path[-1])
            if hall is None or unit_of(hall) != unit:
                raise UnknownUnit(f"no hall {ref!r} is registered", location)
        return unit

    def _unit_for(self, complaint: Complaint, ref: str, field: str = "to_unit") -> OrgUnit:
        """A registered hall (by code or path), or a unit above the complaint's hall (its city, province, group):
        where it may be dispatched, and who may be responsible for it."""
        location = ("body", field)
        unit = self.unit_named_in_request(ref, location)
        if unit.level != "hall" and not unit.contains(self.registering_unit(complaint)):
            raise UnknownUnit(
                f"{ref} is neither a registered hall nor a unit above hall {complaint.hall_code}", location
            )
        return unit

    def escalate(
        self, complaint_id: uuid.UUID, target_unit: str, request: StepRequest, viewer: Principal
    ) -> tuple[Complaint, bool]:
        """Escalates by hand to the complaint's hall (its manager) or a unit above it: its city, province or
        the group; the level is the target's place on that ladder."""

        def perform(complaint: Complaint, step: Step) -> None:
            unit = self._unit_for(complaint, target_unit, "target_unit")
            try:
                level = escalation_level(self.registering_unit(complaint), unit)
            except ValueError as outside:
                raise UnknownUnit(str(outside), ("body", "target_unit")) from None
            complaint.escalate(str(unit), level, step)

        return self.act(complaint_id, request, perform, viewer)

    def check(
        self, complaint_id: uuid.UUID, finding: CheckFinding, request: StepRequest, viewer: Principal
    ) -> tuple[Complaint, bool]:
        """Records the check's finding; its responsible unit is a registered hall or a unit above the hall."""

        def perform(complaint: Complaint, step: Step) -> None:
            unit = self._unit_for(complaint, finding.responsible_unit, "responsible_unit")
            complaint.check(finding.substantiated, finding.root_cause, finding.root_cause_class, str(unit), step)

        return self.act(complaint_id, request, perform, viewer)

    @staticmethod
    def _replayed(complaint: Complaint, fingerprint: str) -> Complaint:
        require_same_request(complaint.request_fingerprint, fingerprint)
        return complaint

    async def adopt_legacy_numbers(self, legacy: LegacyNumbers) -> int:
        """Gives every number of the legacy table whose complaint was saved its `ComplaintNumber`,
        then drops the table; returns how many it adopted. Replicas may race: a number already
        adopted is skipped."""
        adopted = 0
        for number, complaint_id in await legacy.given():
            if await asyncio.to_thread(self.find, Complaint, complaint_id) is None:
                continue  # reserved for a save that failed: it points at nothing
            with contextlib.suppress(IntegrityError):
                await asyncio.to_thread(self.save, ComplaintNumber.given(number, complaint_id))
                adopted += 1
        await legacy.drop()
        return adopted

    async def public_progress(
        self, number: str, phone_last_four: str, client: str
    ) -> tuple[Complaint, list[tuple[str, datetime]]]:
        """For the customer: the complaint and its steps, if the number and phone digits match.

        An unknown number and wrong digits get the same answer, after the same work, so numbers cannot be
        probed. Wrong attempts count against the client (`client`: a digest of its address), never against
        the number, so a stranger's guesses cannot lock the customer out (see `AttemptLimits`).
        """
        found: list[Complaint] = []

        async def verify() -> bool:
            complaint = await asyncio.to_thread(self._numbered, number)
            customer = await asyncio.to_thread(self.customer_of, complaint) if complaint else None
            phone = customer.phone if customer else "0000"
            matched = hmac.compare_digest(phone[-4:].encode(), phone_last_four.encode())
            if complaint is None or customer is None or not matched:
                return False
            found.append(complaint)
            return True

        judgement = await self._verification_attempts.judge(client, self.clock(), verify)
        if judgement.retry_after is not None:
            raise TooManyAttempts(judgement.retry_after)
        if not judgement.passed:
            raise PublicComplaintNotFound("no complaint with this number and verification digits")
        return found[0], await asyncio.to_thread(self._steps_of, found[0])

    def record_notification(self, complaint_id: uuid.UUID, notice: Notice) -> None:
        """Records a notification's outcome (for the complaint's timeline), once."""
        for _ in range(RECORD_ATTEMPTS):
            record = self._notifications_of(complaint_id) or CustomerNotifications(complaint_id)
            try:
                record.record(notice)
            except AlreadyDone:
                return
            try:
                self.save(record)
            except IntegrityError:
                continue  # another replica recorded one meanwhile: record it on the newer version
            return
        raise ConcurrentChange(f"the notifications of {complaint_id} kept changing; this one is recorded later")

    def _notifications_of(self, complaint_id: uuid.UUID) -> CustomerNotifications | None:
        return self.find(CustomerNotifications, CustomerNotifications.create_id(complaint_id))

    def customer_of(self, complaint: Complaint) -> CustomerData | None:
        """The customer's name, phone and description as given; None once erased."""
        if complaint.customer_erased:
            return None
        return self.customer_sealed_in(complaint.id, complaint.customer_sealed)

    def customer_sealed_in(self, complaint_id: uuid.UUID, sealed: str) -> CustomerData | None:
        """The customer data `sealed` holds for the complaint (e.g. as its registration recorded it); None once
        its key is destroyed."""
        wrapped = self.data_keys.wrapped(complaint_id)
        data_key = None if wrapped is None else self._master_key.unwrap(complaint_id, wrapped)
        return unseal(data_key, complaint_id, sealed)

    def complaints_of(
        self, numbers: list[str], phones: list[str], phone_digests: list[bytes], viewer: Principal
    ) -> list[Complaint]:
        """The complaints the viewer may see with these numbers, or of customers with these phones (or
        phone digests)."""
        digests = [*phone_digests, *(self._master_key.phone_digest(phone) for phone in phones)]
        ids = {subject for digest in digests for subject in self.data_keys.subjects_of_phone(digest)}
        ids.update(given for number in numbers if (given := self._given(number)) is not None)
        return [
            complaint for complaint in self.complaints_by_id(sorted(ids)) if self._visible(complaint.hall_code, viewer)
        ]

    def erase_customer(self, complaint: Complaint, actor: str, reason: str) -> bool:
        """Destroys the key of the complaint's customer data, then records the erasure on the complaint;
        False if it was erased already. The data goes first, the attachments' then the key: what must not survive
        a failure is the data, and a failed erasure is made again on retry or at the next sweep."""
        for erase in self._erased_with_customer:
            erase(complaint.id)
        self.data_keys.destroy([complaint.id], self.clock())
        if complaint.customer_erased:
            return False
        complaint.erase_customer(Step(actor=actor, reason=reason, at=self.clock()))
        self.save(complaint)
        return True

    def erase_after_retention(self, retention: timedelta, limit: int = 500) -> int:
        """Erases the customer data of complaints closed longer than `retention` ago; returns how many."""
        due = self.data_keys.closed_before(self.clock() - retention, limit)
        reason = f"retention: closed more than {retention.days} days ago"
        erased = 0
        for complaint in self.complaints_by_id(due):
            try:
                erased += self.erase_customer(complaint, "retention", reason)
            except IntegrityError:
                continue  # another replica recorded it at the same moment
        return erased

    def repeated(self, complaint: Complaint, viewer: Principal) -> list[str]:
        """The numbers of the earlier complaints within the window that made this one a repeat (the newest
        `REPEATS_NAMED`) that the viewer may see, oldest first; none once the customer is erased."""
        if not complaint.repeat_count:
            return []
        window = (complaint.received_at - self.repeat_window, complaint.received_at)
        return self._visible_numbers(self.data_keys.others_of_customer(complaint.id, REPEATS_NAMED, *window), viewer)

    def _visible_numbers(self, newest_first: list[CustomersComplaint], viewer: Principal) -> list[str]:
        return [other.number for other in reversed(newest_first) if self._visible(other.hall_code, viewer)]

    async def _registered_before(self, complaint: Complaint, viewer: Principal) -> Registration:
        return Registration(complaint, False, await asyncio.to_thread(self.repeated, complaint, viewer))

    def related(self, complaint: Complaint, viewer: Principal) -> list[Complaint]:
        """The same customer's other complaints the viewer may see (of the newest `MAX_RELATED`), oldest
        first; none once the customer is erased: the phone's digest goes with the key."""
        others = self.data_keys.others_of_customer(complaint.id, MAX_RELATED)
        visible = [other.subject for other in others if self._visible(other.hall_code, viewer)]
        return sorted(self.complaints_by_id(visible), key=lambda other: other.received_at)

    def complaints_by_id(self, ids: list[uuid.UUID]) -> list[Complaint]:
        return [complaint for id_ in ids if (complaint := self.find(Complaint, id_)) is not None]

    def _numbered(self, number: str) -> Complaint | None:
        """The numbered complaint; an unknown number costs the same lookups, so it is not told apart by time."""
        return self.find(Complaint, self._given(number) or uuid.uuid4())

    def _given(self, number: str) -> uuid.UUID | None:
        """The complaint given the number. Both places are asked, whatever the first answers: the time taken
        tells nothing of which holds it."""
        given_before = self.find(ComplaintNumber, number_aggregate_id(number))  # before numbers went with keys
        return self.data_keys.numbered(number) or (given_before.complaint_id if given_before else None)

    def _steps_of(self, complaint: Complaint) -> list[tuple[str, datetime]]:
        return [
            (type(event).__name__, event.timestamp)
            for event in self.repository.event_store.get(complaint.id)
            if isinstance(event, AggregateEvent)
        ]
