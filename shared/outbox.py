"""A service's event store as the relay's outbox: its internal events, turned into published contracts."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, cast

from eventsourcing.application import Application
from eventsourcing.domain import AggregateEvent, DomainEventProtocol
from eventsourcing.persistence import Notification

from shared.contracts import Contract, build_event, encode_event
from shared.relay import OutgoingMessage

ToContract = Callable[[DomainEventProtocol[uuid.UUID]], Contract | None]


class EventStoreOutbox:
    def __init__(self, application: Application[Any], to_contract: ToContract, source: str) -> None:
        self.application = application
        self.to_contract = to_contract
        self.source = source

    def read_after(self, position: int, limit: int) -> Sequence[OutgoingMessage]:
        notifications = self.application.recorder.select_notifications(
            start=position, limit=limit, inclusive_of_start=False
        )
        return [self._message(notification) for notification in notifications]

    def _message(self, notification: Notification) -> OutgoingMessage:
        domain_event = cast(AggregateEvent, self.application.mapper.to_domain_event(notification))
        key = str(notification.originator_id).encode()
        contract = self.to_contract(domain_event)
        if contract is None:
            return OutgoingMessage(position=notification.id, key=key, value=None)
        event = build_event(
            contract,
            source=self.source,
            aggregate_id=domain_event.originator_id,
            aggregate_version=domain_event.originator_version,
            occurred_at=domain_event.timestamp,
        )
        return OutgoingMessage(
            position=notification.id,
            key=key,
            value=encode_event(event),
            headers=[
                ("event_type", contract.event_type.encode()),
                ("schema_version", str(contract.schema_version).encode()),
            ],
        )
