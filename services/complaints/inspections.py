"""Inspections of halls and the rectification orders their findings open (检查 → 沟通 → 整改 → 反馈)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from services.complaints.domain import RemembersRequests, Step, StepRefused, with_new_files


def order_id_for(inspection_id: uuid.UUID, finding_index: int) -> uuid.UUID:
    """Stable, so a retried inspection opens the same orders."""
    return uuid.uuid5(inspection_id, f"finding-{finding_index}")


class Inspection(Aggregate):
    class Recorded(Aggregate.Created):
        class_version = 2

        hall_code: str
        inspection_type: str
        inspector: str
        checklist_version: str
        score: int
        max_score: int
        results: list[dict[str, Any]]
        findings: list[dict[str, Any]]
        innovation_rating: float | None
        highlights: list[dict[str, Any]]
        at: datetime
        request_fingerprint: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Inspections recorded before ratings and highlights existed had neither."""
            state["innovation_rating"] = None
            state["highlights"] = []

    @event(Recorded)
    def __init__(
        self,
        id: uuid.UUID,  # noqa: A002 - eventsourcing takes the aggregate id from this name
        hall_code: str,
        inspection_type: str,
        inspector: str,
        checklist_version: str,
        score: int,
        max_score: int,
        results: list[dict[str, Any]],
        findings: list[dict[str, Any]],
        innovation_rating: float | None,
        highlights: list[dict[str, Any]],
        at: datetime,
        request_fingerprint: str,
    ) -> None:
        self.hall_code = hall_code
        self.inspection_type = inspection_type
        self.inspector = inspector
        self.checklist_version = checklist_version
        self.score = score
        self.max_score = max_score
        self.results = results
        self.findings = findings
        self.innovation_rating = innovation_rating
        self.highlights = highlights
        self.at = at
        self.request_fingerprint = request_fingerprint


class RectificationOrder(RemembersRequests):
    """One finding's loop: communicated to the hall manager, acknowledged, rectified with a
    report, then verified by the inspector (closed) or rejected (rectify again)."""

    class Opened(Aggregate.Created):
        class_version = 2

        inspection_id: uuid.UUID
        hall_code: str
        item_id: str
        points: int
        description: str
        deadline: datetime
        at: datetime
        attachments: list[dict[str, Any]]  # the evidence its finding referred to (hash, size, type, name)

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Orders opened before findings had attachments had none."""
            state["attachments"] = []

    @event(Opened)
    def __init__(
        self,
        id: uuid.UUID,  # noqa: A002 - eventsourcing takes the aggregate id from this name
        inspection_id: uuid.UUID,
        hall_code: str,
        item_id: str,
        points: int,
        description: str,
        deadline: datetime,
        at: datetime,
        attachments: list[dict[str, Any]],
    ) -> None:
        self.inspection_id = inspection_id
        self.hall_code = hall_code
        self.item_id = item_id
        self.points = points
        self.description = description
        self.deadline = deadline
        self.status = "open"
        self.rejections = 0
        self.appeal: str | None = None  # pending, upheld or dismissed
        self.opened_at = at
        # The evidence its finding and its reports referred to, each file once.
        self.attachments: list[dict[str, Any]] = list(attachments)
        self.requests: dict[str, tuple[str, int]] = {}

    def communicate(self, step: Step) -> None:
        self._require("open", "the findings were already communicated")
        self._communicated(**step.fields())

    def acknowledge(self, step: Step) -> None:
        self._require("communicated", "communicate the findings to the hall manager first")
        self._acknowledged(**step.fields())

    def rectify(
        self, report: str, evidence: list[str], step: Step, attachments: list[dict[str, Any]] | None = None
    ) -> None:
        """`attachments`: what the report says of each uploaded file it refers to (hash, size, type, name)."""
        self._require("acknowledged", "the hall manager must acknowledge the findings before rectifying")
        self._rectified(report=report, evidence=evidence, attachments=attachments or [], **step.fields())

    def verify(self, step: Step) -> None:
        self._require("rectified", "there is no rectification report to verify")
        self._verified(**step.fields())

    def reject(self, step: Step) -> None:
        self._require("rectified", "there is no rectification report to reject")
        self._rejected(**step.fields())

    def file_appeal(self, step: Step) -> None:
        """The hall contests the finding (申诉), once, whatever the loop's stage: the deduction stands until
        the unit above decides."""
        if self.appeal is not None:
            raise StepRefused(f"the finding was appealed already ({self.appeal})")
        self._appealed(**step.fields())

    def decide_appeal(self, upheld: bool, deciding_unit: str, step: Step) -> None:
        """`deciding_unit`: a unit above the hall (the caller makes sure)."""
        if self.appeal != "pending":
            raise StepRefused("there is no pending appeal to decide")
        self._appeal_decided(
            upheld=upheld,
            deciding_unit=deciding_unit,
            hall_id=self.hall_code,
            order_opened_at=self.opened_at,
            **step.fields(),
        )

    def _require(self, status: str, otherwise: str) -> None:
        if self.status == "closed":
            raise StepRefused("the rectification order is closed")
        if self.status != status:
            raise StepRefused(otherwise)

    @event("Appealed")
    def _appealed(
        self, actor: str, reason: str, at: datetime, request_key: str | None, request_fingerprint: str | None
    ) -> None:
        self.appeal = "pending"
        self._remember(request_key, request_fingerprint)

    @event("AppealDecided")
    def _appeal_decided(
        self,
        upheld: bool,
        deciding_unit: str,
        hall_id: str,
        order_opened_at: datetime,
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        self.appeal = "upheld" if upheld else "dismissed"
        self._remember(request_key, request_fingerprint)

    @event("Communicated")
    def _communicated(
        self, actor: str, reason: str, at: datetime, request_key: str | None, request_fingerprint: str | None
    ) -> None:
        self.status = "communicated"
        self._remember(request_key, request_fingerprint)

    @event("Acknowledged")
    def _acknowledged(
        self, actor: str, reason: str, at: datetime, request_key: str | None, request_fingerprint: str | None
    ) -> None:
        self.status = "acknowledged"
        self._remember(request_key, request_fingerprint)

    @event("Rectified")
    def _rectified(
        self,
        report: str,
        evidence: list[str],
        actor: str,
        reason: str,
        at: datetime,
        request_key: str | None,
        request_fingerprint: str | None,
        attachments: list[dict[str, Any]] | None = None,  # None: recorded before reports had attachments
    ) -> None:
        self.status = "rectified"
        self.attachments = with_new_files(self.attachments, attachments)
        self._remember(request_key, request_fingerprint)

    @event("Verified")
    def _verified(
        self, actor: str, reason: str, at: datetime, request_key: str | None, request_fingerprint: str | None
    ) -> None:
        self.status = "closed"
        self._remember(request_key, request_fingerprint)

    @event("Rejected")
    def _rejected(
        self, actor: str, reason: str, at: datetime, request_key: str | None, request_fingerprint: str | None
    ) -> None:
        self.status = "acknowledged"
        self.rejections += 1
        self._remember(request_key, request_fingerprint)
