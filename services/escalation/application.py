"""Use cases of the escalation service: track clocks from complaint events, fire what falls due, recalculate.

Each use case returns the `Due` of every subject it touched, which the caller writes to the
deadlines table. The event store commits first, on its own; should the deadlines write be
lost, the subject's version guards the table and its record of fired milestones keeps a
retried claim or a redelivered event from firing anything twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from services.escalation.clocks import Step
from services.escalation.metrics import count_stops, prepare_series
from services.escalation.tracking import Opening, SlaRules, SlaSubject, replayed_with_verdicts, sla_subject_id
from shared.clock import Clock
from shared.consumer import TransientError
from shared.metrics import SLA_MILESTONES
from shared.tracing import StoresTraceContext, traced_events

logger = logging.getLogger(__name__)
# Another writer (the consumer or a second replica) saved the same subject first: load it again and redo.
MAX_CONFLICT_RETRIES = 5
ChangeFn = Callable[[SlaSubject, datetime], bool]


@dataclass(frozen=True)
class Due:
    """What the deadlines table must say of one subject after a change."""

    sla_id: uuid.UUID
    version: int
    due_at: datetime | None  # the next milestone; None while every running clock is paused or all have fired
    open: bool  # False once every clock has stopped: nothing is left to watch


@dataclass(frozen=True)
class Observation:
    """A step of a complaint or order that may start, pause, resume or stop its clocks."""

    subject_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    at: datetime
    detail: Mapping[str, str] = field(default_factory=dict)  # see `Step`

    @property
    def step(self) -> Step:
        return Step(self.event_type, self.at, self.detail)


class UnknownSubject(LookupError):
    """An event for a complaint or order whose opening event was never seen."""


class EscalationApplication(StoresTraceContext):
    name = "escalation"

    def __init__(self, env: Mapping[str, str], rules: SlaRules, clock: Clock) -> None:
        super().__init__(env)
        self.rules = rules
        self.clock = clock

    def open(self, opening: Opening) -> Due:
        """Starts a subject's clocks; opening it again changes nothing."""
        [due] = self.track([(opening, None)])
        return due

    def observe(self, subject_id: uuid.UUID, event_id: uuid.UUID, event_type: str, at: datetime, **detail: str) -> Due:
        [due] = self.track([(Observation(subject_id, event_id, event_type, at, detail), None)])
        return due

    def track(self, changes: Sequence[tuple[Opening | Observation, str | None]]) -> list[Due]:
        """Applies openings and observed steps in order, each with the trace context its events carry on:
        every subject is loaded once and all are saved in one transaction. The `Due` of each subject touched.
        """
        for attempt in range(MAX_CONFLICT_RETRIES):
            # A subject is opened once: only a redelivered opening finds it stored, and then its save conflicts.
            look_up_openings = attempt > 0
            now = self.clock()
            subjects: dict[uuid.UUID, SlaSubject] = {}
            opened: list[SlaSubject] = []
            judged: dict[uuid.UUID, int] = {}  # verdicts each observed subject had before this batch
            traced: list[tuple[DomainEventProtocol[uuid.UUID], str]] = []
            for change, traceparent in changes:
                sla_id = sla_subject_id(change.subject_id)
                subject = subjects.get(sla_id)
                if subject is None and (look_up_openings or not isinstance(change, Opening)):
                    subject = self.subject(change.subject_id)
                before = len(subject.pending_events) if subject is not None else 0
                if isinstance(change, Opening):
                    if subject is None:
                        subject = SlaSubject.open(self.rules, change)
                        subject.fire_due(self.rules, up_to=now, now=now)  # e.g. registered late, already overdue
                        opened.append(subject)
                elif subject is None:
                    raise UnknownSubject(f"no clocks for {change.subject_id}: its opening event was never received")
                else:
                    subject.recalculate(self.rules, now)  # closed while the rules changed, and now reopened
                    judged.setdefault(sla_id, len(subject.verdicts))
                    subject.observe(self.rules, change.event_id, change.step, now)
                subjects[sla_id] = subject
                traced += traced_events(subject, before, traceparent)
            try:
                self._save(*subjects.values(), traced=traced)
            except IntegrityError:  # another replica, the scheduler or a redelivery saved one first
                continue
            for subject in opened:
                if subject.kind == "complaint":
                    prepare_series(subject)
            for sla_id, verdicts_before in judged.items():
                if (subject := subjects[sla_id]).kind == "complaint":
                    count_stops(subject, subject.verdicts[verdicts_before:])
            return [self.due(subject) for subject in subjects.values()]
        raise TransientError(f"{len(changes)} changes still conflicting after {MAX_CONFLICT_RETRIES} attempts")

    def fire_due(self, sla_ids: Sequence[uuid.UUID]) -> list[Due]:
        """Fires what is due on each subject, all saved in one transaction."""
        dues, _ = self._change_all(sla_ids, lambda subject, now: subject.fire_due(self.rules, up_to=now, now=now) > 0)
        return dues

    def recalculate(self, sla_ids: Sequence[uuid.UUID]) -> tuple[list[Due], int]:
        """Re-derives deadlines under the current rules; and how many subjects had their rules changed."""
        return self._change_all(sla_ids, lambda subject, now: subject.recalculate(self.rules, now))

    def record_missing_verdicts(self, sla_ids: Sequence[uuid.UUID]) -> int:
        """Records the verdict on each stop the subjects made before escalation recorded verdicts, all saved
        in one transaction; returns how many. The metrics count none: those stops were counted when made."""
        for _ in range(MAX_CONFLICT_RETRIES):
            now = self.clock()
            replayed = [replayed_with_verdicts(self.rules, self.repository.event_store.get(id_)) for id_ in sla_ids]
            recorded = sum(subject.record_missing_verdicts(implied, now) for subject, implied in replayed)
            try:
                self._save(*(subject for subject, _ in replayed))
            except IntegrityError:
                logger.info("a subject changed while its verdicts were recorded; trying the batch again")
                continue
            return recorded
        raise TransientError(f"batch of {len(sla_ids)} still conflicting after {MAX_CONFLICT_RETRIES} attempts")

    def subjects_opened_after(self, position: int, limit: int) -> list[tuple[int, uuid.UUID]]:
        """Up to `limit` subjects in the order they were opened, after `position` in the store's log,
        each with its position."""
        notifications = self.recorder.select_notifications(
            start=position, limit=limit, topics=[get_topic(SlaSubject.Opened)], inclusive_of_start=False
        )
        return [(notification.id, uuid.UUID(str(notification.originator_id))) for notification in notifications]

    def _change_all(self, sla_ids: Sequence[uuid.UUID], change: ChangeFn) -> tuple[list[Due], int]:
        for _ in range(MAX_CONFLICT_RETRIES):
            now = self.clock()
            subjects: list[SlaSubject] = [self.repository.get(sla_id) for sla_id in sla_ids]
            changed = [subject for subject in subjects if change(subject, now)]
            try:
                self._save(*changed)
            except IntegrityError:
                logger.info("a subject changed while its milestones were fired; trying the batch again")
                continue
            return [self.due(subject) for subject in subjects], len(changed)
        raise TransientError(f"batch of {len(sla_ids)} still conflicting after {MAX_CONFLICT_RETRIES} attempts")

    def _save(self, *subjects: SlaSubject, traced: Sequence[tuple[DomainEventProtocol[uuid.UUID], str]] = ()) -> None:
        """Saves, then counts the milestones that fired: only once they are stored."""
        recordings = self.save_traced(subjects, traced) if traced else self.save(*subjects)
        for recording in recordings:
            fired = recording.domain_event
            if isinstance(fired, SlaSubject.MilestoneReached):
                SLA_MILESTONES.labels(fired.clock, fired.milestone, str(fired.level)).inc()

    def subject(self, subject_id: uuid.UUID) -> SlaSubject | None:
        try:
            subject: SlaSubject = self.repository.get(sla_subject_id(subject_id))
        except AggregateNotFoundError:
            return None
        return subject

    def due(self, subject: SlaSubject) -> Due:
        plans = subject.plans(self.rules)
        is_open = any(plan.clock.stopped_at is None for plan in plans)
        return Due(subject.id, subject.version, subject.next_due(plans) if is_open else None, is_open)
