"""A hall's scorecard for one period: every fact that touched it, with its effect on the score."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from eventsourcing.domain import Aggregate, event
from eventsourcing.domain import Snapshot as AggregateSnapshot
from eventsourcing.utils import get_topic

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
    class_version = 1  # of the snapshots' state (see `Scorecard.Snapshot`)

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

    class Snapshot(AggregateSnapshot):
        """The scorecard at a version, its facts as plain JSON (`PeriodFacts.as_state`): loading a hall-month
        the cache does not hold replays only the events after its last snapshot. A field added to a subject's
        facts takes its default; any other change to what a scorecard holds needs a new
        `Scorecard.class_version` and its `upcast_v<n>_v<n+1>(state)`, as eventsourcing has it
        (tests/unit/test_scoring_tally.py pins the fields)."""

        @classmethod
        def take(cls, aggregate: Any) -> Scorecard.Snapshot:
            card = cast(Scorecard, aggregate)
            state = {
                "hall_id": card.hall_id,
                "period": card.period,
                "facts": card.facts.as_state(),
                "seen": [seen.hex for seen in card.seen],
                "held": [
                    {
                        "source_event_id": held.source.event_id.hex,
                        "source_event_type": held.source.event_type,
                        "occurred_at": held.source.occurred_at.isoformat(),
                        "fact": held.fact.model_dump(mode="json"),
                    }
                    for held in card.held.values()  # in arrival order, which applying them keeps to
                ],
                "score": card.score,
                "class_version": Scorecard.class_version,
            }
            return cls(
                originator_id=card.id,
                originator_version=card.version,
                timestamp=cls.create_timestamp(),
                topic=get_topic(Scorecard),
                state=state,
            )

        def mutate(self, _: Any) -> Scorecard:
            state = dict(self.state)
            for version in range(state.pop("class_version", 1), Scorecard.class_version):
                getattr(Scorecard, f"upcast_v{version}_v{version + 1}")(state)
            card = object.__new__(Scorecard)
            card.__dict__.update(_id=self.originator_id, _version=self.originator_version, _pending_events=[])
            card.hall_id, card.period, card.score = state["hall_id"], state["period"], state["score"]
            card.facts = PeriodFacts.from_state(state["facts"])
            card.seen = {uuid.UUID(seen) for seen in state["seen"]}
            card.held = {}
            for held in state["held"]:
                source = SourceEvent(
                    uuid.UUID(held["source_event_id"]),
                    held["source_event_type"],
                    datetime.fromisoformat(held["occurred_at"]),
                )
                card.held[source.event_id] = HeldFact(source, SCORING_FACT.validate_python(held["fact"]))
            return card

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
