"""Use cases of the complaints service: load, call the aggregate, save."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresDatastore

from services.complaints.domain import Complaint, Hall, hall_aggregate_id
from services.complaints.group_commit import GroupCommitter
from shared.errors import ServiceError

Clock = Callable[[], datetime]
CHINA_TIME = ZoneInfo("Asia/Shanghai")
MAX_LATE_SUBMISSION = timedelta(days=30)
COMPLAINT_NUMBER_SEQUENCE = "complaint_number_seq"
IDEMPOTENCY_NAMESPACE = uuid.UUID("9a3e1c55-0e43-4d5b-8c1b-4b1f6f0f2d70")


class ComplaintsError(ServiceError):
    pass


class HallAlreadyRegistered(ComplaintsError):
    error_type = "hall_exists"
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


class IdempotencyKeyReused(ComplaintsError):
    status_code = 422
    error_type = "idempotency_key_reused"
    field = ("header", "Idempotency-Key")


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
    received_by: str | None = None
    received_at: datetime | None = None

    def fingerprint(self) -> str:
        """Identifies the request's content, to tell a retry from a reused key."""
        canonical = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


class ComplaintsApplication(Application[uuid.UUID]):
    name = "complaints"

    def __init__(self, env: Mapping[str, str], clock: Clock = lambda: datetime.now(UTC)) -> None:
        super().__init__(env)
        self.clock = clock
        self._datastore: PostgresDatastore = self.recorder.datastore  # type: ignore[attr-defined]
        self._group_commit = GroupCommitter(self)
        self._registered_halls: set[str] = set()

    def close(self) -> None:
        self._group_commit.close()
        super().close()

    def register_hall(self, command: RegisterHall) -> Hall:
        hall = Hall(**asdict(command))
        try:
            self.save(hall)
        except IntegrityError:
            raise HallAlreadyRegistered(f"hall {command.hall_code!r} is already registered") from None
        return hall

    def get_hall(self, hall_code: str) -> Hall:
        try:
            hall: Hall = self.repository.get(hall_aggregate_id(hall_code))
        except AggregateNotFoundError:
            raise HallNotFound(f"no hall {hall_code!r}") from None
        return hall

    def register_complaint(
        self, command: RegisterComplaint, idempotency_key: str | None = None
    ) -> tuple[Complaint, bool]:
        """Returns the complaint and whether this call created it.

        With an idempotency key, a repeated request returns the complaint the
        first one created, and the same key with different content is refused.
        """
        fingerprint = command.fingerprint()
        if idempotency_key is None:
            complaint_id = uuid.uuid4()
        else:
            complaint_id = uuid.uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key)
            existing = self._find_complaint(complaint_id)
            if existing is not None:
                return self._replayed(existing, fingerprint), False

        now = self.clock()
        received_at = command.received_at or now
        if received_at > now:
            raise ReceivedAtOutOfRange("received_at is in the future")
        if now - received_at > MAX_LATE_SUBMISSION:
            raise ReceivedAtOutOfRange(f"received_at is more than {MAX_LATE_SUBMISSION.days} days old")
        if not self._hall_exists(command.hall_code):
            raise UnknownHall(f"no hall {command.hall_code!r} is registered")

        complaint = Complaint(
            id=complaint_id,
            number=self._next_complaint_number(now),
            hall_code=command.hall_code,
            channel=command.channel,
            category=command.category,
            priority=command.priority,
            customer_name=command.customer_name,
            customer_phone=command.customer_phone,
            description=command.description,
            received_by=command.received_by or command.hall_code,
            received_at=received_at,
            registered_at=now,
            request_fingerprint=fingerprint,
        )
        try:
            self._group_commit.save(complaint)
        except IntegrityError:
            # A concurrent request with the same idempotency key won the race.
            return self._replayed(self.get_complaint(complaint_id), fingerprint), False
        return complaint, True

    def _hall_exists(self, hall_code: str) -> bool:
        """Halls are never removed, so once seen a hall code need not be looked up again."""
        if hall_code not in self._registered_halls:
            try:
                self.get_hall(hall_code)
            except HallNotFound:
                return False
            self._registered_halls.add(hall_code)
        return True

    def get_complaint(self, complaint_id: uuid.UUID) -> Complaint:
        complaint = self._find_complaint(complaint_id)
        if complaint is None:
            raise ComplaintNotFound(f"no complaint {complaint_id}")
        return complaint

    def _find_complaint(self, complaint_id: uuid.UUID) -> Complaint | None:
        try:
            complaint: Complaint = self.repository.get(complaint_id)
        except AggregateNotFoundError:
            return None
        return complaint if isinstance(complaint, Complaint) else None

    @staticmethod
    def _replayed(complaint: Complaint, fingerprint: str) -> Complaint:
        if complaint.request_fingerprint != fingerprint:
            raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")
        return complaint

    def _next_complaint_number(self, now: datetime) -> str:
        sequence = f"{self._datastore.schema}.{COMPLAINT_NUMBER_SEQUENCE}"
        with self._datastore.get_connection() as connection:
            row = connection.execute("SELECT nextval(%s::regclass) AS n", (sequence,)).fetchone()
        assert row is not None
        return f"C{now.astimezone(CHINA_TIME):%Y%m%d}-{row['n']:06d}"
