"""A service's event store as the relay's outbox: its internal events, turned into published contracts."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import cast

from eventsourcing.domain import AggregateEvent, DomainEventProtocol

from shared.contracts import Contract, build_event, encode_event
from shared.relay import OutgoingMessage
from shared.tracing import StoresTraceContext

ToContract = Callable[[DomainEventProtocol[uuid.UUID]], Contract | None]


class EventStoreOutbox:
    def __init__(self, application: StoresTraceContext, to_contract: ToContract, source: str) -> None:
        self.application = application
        self.to_contract = to_contract
        self.source = source

    def read_after(self, position: int, limit: int) -> Sequence[OutgoingMessage]:
        notifications = self.application.recorder.select_notifications(
            start=position, limit=limit, inclusive_of_start=False
        )
        events = [
            (notification.id, cast(AggregateEvent, self.application.mapper.to_domain_event(notification)))
            for notification in notifications
        ]
        trace_contexts = self.application.stored_trace_contexts([event for _, event in events])
        return [
            self._message(position, event, trace_contexts.get((event.originator_id, event.originator_version)))
            for position, event in events
        ]

    def newest_position(self) -> int:
        return self.application.recorder.max_notification_id() or 0

    def _message(self, position: int, domain_event: AggregateEvent, traceparent: str | None) -> OutgoingMessage:
        key = str(domain_event.originator_id).encode()
        contract = self.to_contract(domain_event)
        if contract is None:
            return OutgoingMessage(position=position, key=key, value=None)
        event = build_event(
            contract,
            source=self.source,
            aggregate_id=domain_event.originator_id,
            aggregate_version=domain_event.originator_version,
            occurred_at=domain_event.timestamp,
        )
        return OutgoingMessage(
            position=position,
            key=key,
            value=encode_event(event),
            headers=[
                ("event_type", contract.event_type.encode()),
                ("schema_version", str(contract.schema_version).encode()),
            ],
            traceparent=traceparent,
        )
