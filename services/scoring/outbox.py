"""Scoring's store as the relay's outbox: each applied fact is published with its effect on the score."""

from __future__ import annotations

import uuid

from eventsourcing.domain import DomainEventProtocol

from services.scoring.application import ScoringApplication
from services.scoring.domain import Scorecard
from shared.contracts import Contract, ScoreRecalculatedV3
from shared.outbox import EventStoreOutbox

SOURCE = "scoring"


def to_contract(domain_event: DomainEventProtocol[uuid.UUID]) -> Contract | None:
    if not isinstance(domain_event, Scorecard.FactApplied):
        return None
    fact = domain_event.scoring_fact
    return ScoreRecalculatedV3(
        hall_id=domain_event.hall_id,
        period=domain_event.period,
        subject_id=fact.subject,
        fact=fact,
        source_event_id=domain_event.source_event_id,
        source_event_type=domain_event.source_event_type,
        policy_version=domain_event.policy_version,
        score_before=domain_event.score_before,
        score=domain_event.score_after,
        components=domain_event.components,
        deductions=domain_event.deductions,
        bonus=domain_event.bonus,
        changes=domain_event.changes,
        at=domain_event.occurred_at,
    )


def scoring_outbox(application: ScoringApplication) -> EventStoreOutbox:
    return EventStoreOutbox(application, to_contract, SOURCE)
