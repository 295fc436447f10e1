"""Scoring's store as the relay's outbox: each applied fact is published with its effect on the score,
and each monthly report's publication with its digest."""

from __future__ import annotations

import uuid

import asyncpg
from eventsourcing.domain import DomainEventProtocol

from services.scoring.application import ScoringApplication
from services.scoring.domain import Scorecard
from services.scoring.published_report import PublishedReport
from shared.contracts import Contract, MonthlyReportPublishedV1, ScoreRecalculatedV3
from shared.outbox import EventStoreOutbox, from_the_event_alone

SOURCE = "scoring"


def to_contract(domain_event: DomainEventProtocol[uuid.UUID]) -> Contract | None:
    if isinstance(domain_event, PublishedReport.Published):
        return MonthlyReportPublishedV1(
            period=domain_event.report["period"],
            scope=domain_event.report["scope"],
            edition=domain_event.edition,
            halls=len(domain_event.report["halls"]),
            digest=domain_event.digest,
            published_by=domain_event.actor,
            at=domain_event.at,
        )
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


def scoring_outbox(application: ScoringApplication, pool: asyncpg.Pool) -> EventStoreOutbox:
    return EventStoreOutbox(application, pool, from_the_event_alone(to_contract), SOURCE)
