"""A published monthly report: each edition's snapshot kept as an event, so what was sent out stays as
it was sent whatever arrives later; a later edition supersedes it and keeps it in the history."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

REPORT_NAMESPACE = uuid.UUID("3c2b7d14-5e1f-4f0a-8b6c-2d9e4a7f1c35")


def report_id(period: str, scope: str) -> uuid.UUID:
    return uuid.uuid5(REPORT_NAMESPACE, f"{scope}/{period}")


def digest_of(report: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(report, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class PublishedReport(Aggregate):
    class Published(Aggregate.Event):
        report: dict[str, Any]
        digest: str
        edition: int
        actor: str
        reason: str
        at: datetime

    @event("Opened")
    def __init__(self, id: uuid.UUID, period: str, scope: str) -> None:  # noqa: A002 - eventsourcing's name
        self.period = period
        self.scope = scope
        self.report: dict[str, Any] = {}
        self.edition = 0
        self.published_at: datetime | None = None
        self.digest = ""

    @classmethod
    def open(cls, period: str, scope: str) -> PublishedReport:
        return cls(id=report_id(period, scope), period=period, scope=scope)

    def publish(self, report: dict[str, Any], actor: str, reason: str, at: datetime) -> None:
        self._published(
            report=report, digest=digest_of(report), edition=self.edition + 1, actor=actor, reason=reason, at=at
        )

    @event(Published)
    def _published(
        self, report: dict[str, Any], digest: str, edition: int, actor: str, reason: str, at: datetime
    ) -> None:
        self.report = report
        self.digest = digest
        self.edition = edition
        self.published_at = at
