"""Complaint, inspection and SLA events become facts on the scorecard of the hall and period they belong to;
hall registrations go into the registry that grades read (`read_model`).

A complaint belongs to the period in which it was received, an order to the one in which it
was opened; so do their later events, however late they come (`repositories` keeps where each belongs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence

from services.scoring import read_model
from services.scoring.application import HallFact, ScoringApplication
from services.scoring.domain import SourceEvent
from services.scoring.repositories import PostgresComplaintPeriods, PostgresOrderPeriods, SubjectPeriods
from shared.clock import period_of
from shared.consumer import Connection, Delivery, Handling
from shared.contracts import (
    AnyScoringFact,
    CheckedFact,
    ComplaintCheckedV1,
    ComplaintCheckedV2,
    ComplaintCheckReviewedV1,
    ComplaintClosedFact,
    ComplaintClosedV1,
    ComplaintLinkedToIncidentV1,
    ComplaintReclassifiedV1,
    ComplaintRegisteredFact,
    ComplaintRegisteredV1,
    ComplaintRegisteredV3,
    ComplaintReopenedFact,
    ComplaintReopenedV1,
    ComplaintUnlinkedFromIncidentV1,
    DeductionWaivedFact,
    FeedbackFact,
    FeedbackReceivedV1,
    FeedbackReceivedV2,
    FindingOpenedFact,
    FirstResponseStoppedFact,
    HallChangedV1,
    HallRegisteredV1,
    IncidentLinkFact,
    InspectedFact,
    InspectionRecordedV1,
    InspectionRecordedV2,
    IntegrationEvent,
    OrderAppealDecidedV1,
    OrderOverdueFact,
    OrderRejectedFact,
    OrderRejectedV1,
    ReclassifiedFact,
    RectificationOrderOpenedV1,
    RectificationStoppedFact,
    ResolutionBreachedFact,
    ResolutionStoppedFact,
    ResponseBreachedFact,
    SlaBreachedV1,
    SlaClockStoppedV1,
)

# A breach counts from the moment escalation fires it, so an unanswered complaint past its limit costs
# before it is answered; the verdict on the stopped clock (met or breached) comes when it stops.
BREACH_FACTS: dict[str, type[ResponseBreachedFact | ResolutionBreachedFact | OrderOverdueFact]] = {
    "first_response": ResponseBreachedFact,
    "resolution": ResolutionBreachedFact,
    "rectification": OrderOverdueFact,
}
STOP_FACTS: dict[str, type[FirstResponseStoppedFact | ResolutionStoppedFact | RectificationStoppedFact]] = {
    "first_response": FirstResponseStoppedFact,
    "resolution": ResolutionStoppedFact,
    "rectification": RectificationStoppedFact,
}
# The complaint's status, for the resolution rate; which steps stop a clock is escalation's to say.
STATUS_FACTS: dict[str, type[ComplaintClosedFact | ComplaintReopenedFact]] = {
    ComplaintClosedV1.event_type: ComplaintClosedFact,
    ComplaintReopenedV1.event_type: ComplaintReopenedFact,
}


class UnknownComplaint(LookupError):
    pass


# Where each complaint of a batch belongs: its hall and period, as recorded when it was registered.
Periods = Mapping[uuid.UUID, tuple[str, str]]
FactOf = Callable[[IntegrationEvent, Periods], HallFact | None]
# Steps of a complaint: they belong to the hall and period of its registration.
COMPLAINT_STEP_TYPES = frozenset(
    [
        *STATUS_FACTS,
        FeedbackReceivedV1.event_type,
        ComplaintCheckedV1.event_type,
        ComplaintCheckReviewedV1.event_type,
        ComplaintReclassifiedV1.event_type,
        ComplaintLinkedToIncidentV1.event_type,
        ComplaintUnlinkedFromIncidentV1.event_type,
    ]
)
ORDER_STEP_TYPES = frozenset([OrderRejectedV1.event_type])  # steps of an order whose events name no hall


def facts() -> dict[str, FactOf]:
    """For each event type but hall registrations, the fact an event brings to its hall's scorecard, if any."""

    def fact_for(event: IntegrationEvent, hall_id: str, period: str, fact: AnyScoringFact) -> HallFact:
        envelope = event.envelope
        source = SourceEvent(envelope.event_id, envelope.event_type, envelope.occurred_at)
        return HallFact(hall_id, period, source, fact)

    def registered(event: IntegrationEvent, periods: Periods) -> HallFact:
        complaint = event.payload
        assert isinstance(complaint, ComplaintRegisteredV1)
        complaint_id = event.envelope.aggregate_id
        fact = ComplaintRegisteredFact(
            subject=complaint_id,
            priority=complaint.priority,
            channel=complaint.channel,
            category=complaint.category,
            repeat_count=complaint.repeat_count if isinstance(complaint, ComplaintRegisteredV3) else 0,
        )
        return fact_for(event, *periods[complaint_id], fact)

    def step(event: IntegrationEvent, periods: Periods) -> HallFact:
        complaint_id = event.envelope.aggregate_id
        if complaint_id not in periods:
            raise UnknownComplaint(f"complaint {complaint_id} was never registered here")
        payload = event.payload
        fact: AnyScoringFact
        if isinstance(payload, FeedbackReceivedV2):
            fact = FeedbackFact(subject=complaint_id, satisfaction=payload.satisfaction, source=payload.source)
        elif isinstance(payload, FeedbackReceivedV1):  # staff, of a unit unknown
            fact = FeedbackFact(subject=complaint_id, satisfaction=payload.satisfaction)
        elif isinstance(payload, ComplaintCheckedV2):
            fact = CheckedFact(
                subject=complaint_id,
                substantiated=payload.substantiated,
                root_cause_class=payload.root_cause_class,
                responsible_unit=payload.responsible_unit,
            )
        elif isinstance(payload, ComplaintCheckedV1 | ComplaintCheckReviewedV1):  # a review replaces the ruling
            fact = CheckedFact(subject=complaint_id, substantiated=payload.substantiated)
        elif isinstance(payload, ComplaintLinkedToIncidentV1):
            fact = IncidentLinkFact(subject=complaint_id, incident_id=str(payload.incident_id))
        elif isinstance(payload, ComplaintUnlinkedFromIncidentV1):
            fact = IncidentLinkFact(subject=complaint_id, incident_id=None)
        elif isinstance(payload, ComplaintReclassifiedV1):
            fact = ReclassifiedFact(
                subject=complaint_id, priority=payload.priority, channel=payload.channel, category=payload.category
            )
        else:
            fact = STATUS_FACTS[event.event_type](subject=complaint_id)
        return fact_for(event, *periods[complaint_id], fact)

    def inspected(event: IntegrationEvent, periods: Periods) -> HallFact | None:
        inspection = event.payload
        if not isinstance(inspection, InspectionRecordedV2):
            return None  # V1 inspections had neither an innovation rating nor highlights; findings come as orders
        fact = InspectedFact(
            subject=event.envelope.aggregate_id,
            bonus=sum(highlight.points for highlight in inspection.highlights),
            innovation_rating=inspection.innovation_rating,
            inspection_type=inspection.inspection_type,
            highlights=len(inspection.highlights),
        )
        return fact_for(event, inspection.hall_id, period_of(inspection.at), fact)

    def order_opened(event: IntegrationEvent, periods: Periods) -> HallFact:
        order = event.payload
        assert isinstance(order, RectificationOrderOpenedV1)
        fact = FindingOpenedFact(subject=event.envelope.aggregate_id, points=order.points, item_id=order.item_id)
        return fact_for(event, order.hall_id, period_of(order.at), fact)

    def order_rejected(event: IntegrationEvent, periods: Periods) -> HallFact | None:
        order_id = event.envelope.aggregate_id
        if order_id not in periods:
            return None  # opened before scoring kept order periods: the report does not count it
        return fact_for(event, *periods[order_id], OrderRejectedFact(subject=order_id))

    def appeal_decided(event: IntegrationEvent, periods: Periods) -> HallFact | None:
        decision = event.payload
        assert isinstance(decision, OrderAppealDecidedV1)
        if not decision.upheld:
            return None
        fact = DeductionWaivedFact(subject=event.envelope.aggregate_id, decided_by=decision.deciding_unit)
        return fact_for(event, decision.hall_id, period_of(decision.order_opened_at), fact)

    def breached(event: IntegrationEvent, periods: Periods) -> HallFact | None:
        breach = event.payload
        assert isinstance(breach, SlaBreachedV1)
        if breach.clock not in BREACH_FACTS:
            return None  # a clock the score does not weigh (an appeal's decision is the unit above's)
        fact = BREACH_FACTS[breach.clock](subject=breach.subject_id)
        return fact_for(event, breach.hall_id, period_of(breach.subject_started_at), fact)

    def clock_stopped(event: IntegrationEvent, periods: Periods) -> HallFact | None:
        verdict = event.payload
        assert isinstance(verdict, SlaClockStoppedV1)
        if verdict.clock not in STOP_FACTS:
            return None
        fact = STOP_FACTS[verdict.clock](subject=verdict.subject_id, breached=verdict.outcome == "breached")
        return fact_for(event, verdict.hall_id, period_of(verdict.subject_started_at), fact)

    return {
        ComplaintRegisteredV1.event_type: registered,
        **dict.fromkeys(COMPLAINT_STEP_TYPES, step),
        InspectionRecordedV1.event_type: inspected,
        RectificationOrderOpenedV1.event_type: order_opened,
        OrderAppealDecidedV1.event_type: appeal_decided,
        OrderRejectedV1.event_type: order_rejected,
        SlaBreachedV1.event_type: breached,
        SlaClockStoppedV1.event_type: clock_stopped,
    }


async def record_periods(connection: Connection, events: Sequence[IntegrationEvent]) -> Periods:
    """Records the hall and period of each complaint registered and each order opened in `events`; gives
    those of every complaint and order they open or take a step of, as stored (one seen before keeps its own)."""
    complaints = await _periods(
        PostgresComplaintPeriods(connection),
        [
            (event.envelope.aggregate_id, event.payload.hall_id, period_of(event.payload.received_at))
            for event in events
            if isinstance(event.payload, ComplaintRegisteredV1)
        ],
        {event.envelope.aggregate_id for event in events if event.event_type in COMPLAINT_STEP_TYPES},
    )
    orders = await _periods(
        PostgresOrderPeriods(connection),
        [
            (event.envelope.aggregate_id, event.payload.hall_id, period_of(event.payload.at))
            for event in events
            if isinstance(event.payload, RectificationOrderOpenedV1)
        ],
        {event.envelope.aggregate_id for event in events if event.event_type in ORDER_STEP_TYPES},
    )
    return {**complaints, **orders}


async def _periods(
    store: SubjectPeriods, opened: list[tuple[uuid.UUID, str, str]], stepped: set[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    await store.record(opened)
    return await store.of({subject for subject, _, _ in opened} | stepped)


def handling(application: ScoringApplication) -> Handling:
    """A batch's facts are worked out in its transaction, in order, then applied together."""
    fact_of = facts()

    async def apply(connection: Connection, deliveries: Sequence[Delivery]) -> None:
        events = [delivery.event for delivery in deliveries]
        periods = await record_periods(connection, events)
        batch: list[HallFact] = []
        for delivery in deliveries:
            event = delivery.event
            if isinstance(event.payload, HallRegisteredV1):
                await read_model.record_hall(connection, event, application.clock())
            elif isinstance(event.payload, HallChangedV1):
                await read_model.record_hall_change(connection, event, application.clock())
            elif (fact := fact_of[event.event_type](event, periods)) is not None:
                batch.append(dataclasses.replace(fact, traceparent=delivery.traceparent))
        if batch:
            await asyncio.to_thread(application.apply_all, batch)

    return Handling(frozenset({HallRegisteredV1.event_type, HallChangedV1.event_type, *fact_of}), apply)
