"""A hall's scorecard for one period: every fact that touched it, with its effect on the score."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from services.scoring.policy import ScoringPolicy
from services.scoring.scorecard import PeriodFacts, Score, score, score_of_tally
from shared.contracts import SCORING_FACT, AnyScoringFact

SCORECARD_NAMESPACE = uuid.UUID("5d0c6a4e-7f3b-4b8e-a1d2-9c4e8f7a6b10")


def scorecard_id(hall_id: str, period: str) -> uuid.UUID:
    return uuid.uuid5(SCORECARD_NAMESPACE, f"{hall_id}/{period}")


@dataclass(frozen=True)
class SourceEvent:
    """The integration event a fact came from, so every point can be traced back to it."""

    event_id: uuid.UUID
    event_type: str
    occurred_at: datetime


@dataclass(frozen=True)
class HeldFact:
    source: SourceEvent
    fact: AnyScoringFact


class Scorecard(Aggregate):
    @event("Opened")
    def __init__(self, id: uuid.UUID, hall_id: str, period: str) -> None:  # noqa: A002 - eventsourcing's name
        self.hall_id = hall_id
        self.period = period
        self.facts = PeriodFacts()
        self.seen: set[uuid.UUID] = set()
        self.held: dict[uuid.UUID, HeldFact] = {}  # by source event, in arrival order
        self.score: float | None = None

    @classmethod
    def open(cls, hall_id: str, period: str) -> Scorecard:
        return cls(id=scorecard_id(hall_id, period), hall_id=hall_id, period=period)

    def apply_fact(self, policy: ScoringPolicy, source: SourceEvent, fact: AnyScoringFact, now: datetime) -> bool:
        """Records the fact and what it did to the score; False if this source event was applied before.

        A fact about a complaint not registered yet (or an order not opened yet) came first on the other
        topic and can move nothing: it is held, and takes effect under its own source right after the
        fact it waited for, so each change is booked to the fact that caused it whatever the arrival order.
        """
        if source.event_id in self.seen:
            return False
        if self.facts.awaits_subject(fact):
            self.trigger_event(
                self.FactHeld,
                timestamp=now,
                source_event_id=source.event_id,
                source_event_type=source.event_type,
                occurred_at=source.occurred_at,
                fact=fact.model_dump(mode="json"),
            )
            return True
        self._record(policy, source, fact, now)
        for held in [held for held in self.held.values() if not self.facts.awaits_subject(held.fact)]:
            self._record(policy, held.source, held.fact, now)
        return True

    def _record(self, policy: ScoringPolicy, source: SourceEvent, fact: AnyScoringFact, now: datetime) -> None:
        before = score(self.facts, policy)
        after = score_of_tally(self.facts.tally_with(fact), policy)
        self.trigger_event(
            self.FactApplied,
            timestamp=now,
            hall_id=self.hall_id,
            period=self.period,
            source_event_id=source.event_id,
            source_event_type=source.event_type,
            occurred_at=source.occurred_at,
            fact=fact.model_dump(mode="json"),
            policy_version=policy.version,
            score_before=before.total,
            score_after=after.total,
            components={str(name): points for name, points in after.components.items()},
            deductions=after.deductions,
            bonus=after.bonus,
            changes=changes(before, after),
        )

    class FactHeld(Aggregate.Event):
        """A fact that waits for its subject's first fact; internal, so not published."""

        source_event_id: uuid.UUID
        source_event_type: str
        occurred_at: datetime
        fact: dict[str, Any]  # stored as JSON; SCORING_FACT reads it

        def apply(self, aggregate: Any) -> None:
            source = SourceEvent(self.source_event_id, self.source_event_type, self.occurred_at)
            aggregate.held[self.source_event_id] = HeldFact(source, SCORING_FACT.validate_python(self.fact))
            aggregate.seen.add(self.source_event_id)

    class FactApplied(Aggregate.Event):
        class_version = 2

        hall_id: str
        period: str
        source_event_id: uuid.UUID
        source_event_type: str
        occurred_at: datetime
        fact: dict[str, Any]  # stored as JSON; SCORING_FACT reads it
        policy_version: str
        score_before: float
        score_after: float
        components: dict[str, float]
        deductions: float
        bonus: float
        changes: list[dict[str, Any]]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Before highlights were scored no fact earned a bonus."""
            state["bonus"] = 0.0

        @property
        def scoring_fact(self) -> AnyScoringFact:
            return SCORING_FACT.validate_python(self.fact)

        def apply(self, aggregate: Any) -> None:
            aggregate.facts.apply(self.scoring_fact)
            aggregate.seen.add(self.source_event_id)
            aggregate.held.pop(self.source_event_id, None)
            aggregate.score = self.score_after


def changes(before: Score, after: Score) -> list[dict[str, Any]]:
    """Each component, the deductions and the bonus that moved, with their points before and after."""
    moved: list[dict[str, Any]] = [
        {"component": name, "before": before.components[name], "after": after.components[name]}
        for name in after.components
        if before.components[name] != after.components[name]
    ]
    if before.deductions != after.deductions:
        moved.append({"component": "deductions", "before": before.deductions, "after": after.deductions})
    if before.bonus != after.bonus:
        moved.append({"component": "bonus", "before": before.bonus, "after": after.bonus})
    return moved
