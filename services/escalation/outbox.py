"""Escalation's store as the relay's outbox: fired milestones, the clocks' deadlines after each step, verdicts
on stopped clocks and recalculations become contracts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

import asyncpg
from eventsourcing.domain import DomainEventProtocol

from services.escalation.application import EscalationApplication
from services.escalation.tracking import SlaSubject
from shared.contracts import (
    ClockName,
    Contract,
    SlaBreachedV1,
    SlaClockStoppedV1,
    SlaEscalatedV2,
    SlaRecalculatedV1,
    SlaScheduledV1,
    SlaWarningV1,
)
from shared.outbox import EventStoreOutbox, from_the_event_alone

SOURCE = "escalation"
MILESTONE_CONTRACTS: dict[str, type[Contract]] = {
    "warning": SlaWarningV1,
    "breach": SlaBreachedV1,
    "escalation": SlaEscalatedV2,
    "raised": SlaEscalatedV2,
}
RAISED_BY = {"escalation": "overdue", "raised": "classification"}


def to_contract(domain_event: DomainEventProtocol[uuid.UUID]) -> Contract | None:
    if isinstance(domain_event, SlaSubject.MilestoneReached):
        contract = MILESTONE_CONTRACTS[domain_event.milestone]
        fields = {
            "subject_id": domain_event.subject_id,
            "subject_kind": domain_event.subject_kind,
            "subject_started_at": domain_event.subject_started_at,
            "hall_id": domain_event.hall_id,
            "clock": domain_event.clock,
            "fraction": domain_event.fraction,
            "due_at": domain_event.due_at,
            "at": domain_event.timestamp,
            "policy_version": domain_event.policy_version,
            "level": domain_event.level,
            "target_unit": domain_event.target_unit,
            "raised_by": RAISED_BY.get(domain_event.milestone),
        }
        return contract.model_validate({name: fields[name] for name in contract.model_fields})
    if isinstance(domain_event, SlaSubject.ClockStopped):
        return SlaClockStoppedV1(
            subject_id=domain_event.subject_id,
            subject_kind=domain_event.subject_kind,
            subject_started_at=domain_event.subject_started_at,
            hall_id=domain_event.hall_id,
            clock=domain_event.clock,
            clock_started_at=domain_event.clock_started_at,
            outcome="breached" if domain_event.breached else "met",
            working_seconds=domain_event.working_seconds,
            limit_working_seconds=domain_event.limit_working_seconds,
            policy_version=domain_event.policy_version,
            reopened=domain_event.reopened,
            stopped_at=domain_event.stopped_at,
        )
    if isinstance(domain_event, SlaSubject.Opened | SlaSubject.Observed) and domain_event.subject_id is not None:
        return SlaScheduledV1(
            subject_id=domain_event.subject_id,
            deadlines=cast(dict[ClockName, datetime | None], domain_event.deadlines),
            at=domain_event.timestamp,
        )
    if isinstance(domain_event, SlaSubject.Recalculated):
        return SlaRecalculatedV1(
            subject_id=domain_event.subject_id,
            previous_rules_version=domain_event.previous_rules_version,
            rules_version=domain_event.rules_version,
            previous_deadlines=domain_event.previous_deadlines,
            deadlines=domain_event.deadlines,
            at=domain_event.timestamp,
        )
    return None


def escalation_outbox(application: EscalationApplication, pool: asyncpg.Pool) -> EventStoreOutbox:
    return EventStoreOutbox(application, pool, from_the_event_alone(to_contract), SOURCE)
