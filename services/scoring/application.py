"""Use cases of the scoring service: apply a fact to its hall's scorecard for the period."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from eventsourcing.application import AggregateNotFoundError, LRUCache, ProjectorFunction, project_aggregate
from eventsourcing.domain import DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import IntegrityError

from services.scoring.domain import Scorecard, SourceEvent, scorecard_id
from services.scoring.policy import ScoringPolicy, period_start, scoring_policy_at
from shared.clock import Clock, system_clock
from shared.consumer import TransientError
from shared.contracts import AnyScoringFact
from shared.tracing import StoresTraceContext, traced_events

MAX_CONFLICT_RETRIES = 5
# Hall-months kept in memory: replaying a busy hall's month for every fact would cost more with each fact.
CACHED_SCORECARDS = 2000
# Snapshots: a scorecard outside the cache (after a restart, or beyond CACHED_SCORECARDS hall-months) loads from
# its last snapshot and the events after it. eventsourcing offers one every SNAPSHOT_INTERVAL events; one is taken
# once the events since this replica's last are at least 1/SNAPSHOT_SPACING of the scorecard's, so a snapshot,
# whose cost grows with the month, costs each event the same however full the month is, and a load replays at
# most about that share of the month's events.
SNAPSHOT_INTERVAL = 100
SNAPSHOT_SPACING = 8

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HallFact:
    """A fact for the scorecard of a hall and period, and the trace context its score change carries on."""

    hall_id: str
    period: str
    source: SourceEvent
    fact: AnyScoringFact
    traceparent: str | None = None


class ScoringApplication(StoresTraceContext):
    name = "scoring"
    snapshotting_intervals: ClassVar[dict[type[MutableOrImmutableAggregate[uuid.UUID]], int]] = {
        Scorecard: SNAPSHOT_INTERVAL
    }

    def __init__(self, env: Mapping[str, str], policies: dict[str, ScoringPolicy], clock: Clock = system_clock) -> None:
        super().__init__({**env, "AGGREGATE_CACHE_MAXSIZE": str(CACHED_SCORECARDS)})
        self.policies = policies
        self.clock = clock  # when each change was recorded: what "as of" audits compare with
        # Facts are applied to the cached scorecards themselves, not to copies, one batch at a time.
        self._applying = threading.Lock()
        # The version of this replica's last snapshot of each scorecard, for as many as are cached: one forgotten
        # is snapshotted again at its next offer, once.
        self._snapshotted: LRUCache[uuid.UUID, int] = LRUCache(CACHED_SCORECARDS)

    def apply(self, hall_id: str, period: str, source: SourceEvent, fact: AnyScoringFact) -> bool:
        """True if the fact was new to the scorecard; scored under the policy in force when the period began."""
        [new] = self.apply_all([HallFact(hall_id, period, source, fact)])
        return new

    def apply_all(self, facts: Sequence[HallFact]) -> list[bool]:
        """Applies facts in order, saving every scorecard they touch in one transaction; whether each was new."""
        with self._applying:
            for _ in range(MAX_CONFLICT_RETRIES):
                cards: dict[uuid.UUID, Scorecard] = {}
                try:
                    new, traced = self._apply_each(facts, cards)
                    self.save_traced(list(cards.values()), traced)
                except Exception as failure:
                    for card_id in cards:
                        self._forget(card_id)  # the cached ones hold events that were not stored
                    if isinstance(failure, IntegrityError):  # another consumer wrote a scorecard first
                        continue
                    raise
                return new
        raise TransientError(f"{len(facts)} facts: still conflicting after {MAX_CONFLICT_RETRIES} attempts")

    def _apply_each(
        self, facts: Sequence[HallFact], cards: dict[uuid.UUID, Scorecard]
    ) -> tuple[list[bool], list[tuple[DomainEventProtocol[uuid.UUID], str]]]:
        new: list[bool] = []
        traced: list[tuple[DomainEventProtocol[uuid.UUID], str]] = []
        for item in facts:
            card_id = scorecard_id(item.hall_id, item.period)
            card = cards.get(card_id) or self._cached_scorecard(card_id) or Scorecard.open(item.hall_id, item.period)
            cards[card_id] = card
            before = len(card.pending_events)
            policy = scoring_policy_at(self.policies, period_start(item.period))
            new.append(card.apply_fact(policy, item.source, item.fact, self.clock()))
            traced += traced_events(card, before, item.traceparent)
        return new, traced

    def facts_applied_after(self, position: int, limit: int) -> tuple[int, list[Scorecard.FactApplied]]:
        """The facts the scorecards applied among the next `limit` events stored after `position`, in store
        order, and the position of the last of those events (`position` if there were none)."""
        notifications = self.recorder.select_notifications(start=position, limit=limit, inclusive_of_start=False)
        events = [self.mapper.to_domain_event(notification) for notification in notifications]
        applied = [event for event in events if isinstance(event, Scorecard.FactApplied)]
        return (notifications[-1].id if notifications else position), applied

    def scorecard(self, hall_id: str, period: str) -> Scorecard | None:
        """A copy of the scorecard as stored, to read."""
        try:
            card: Scorecard = self.repository.get(scorecard_id(hall_id, period))
        except AggregateNotFoundError:
            return None
        return card

    def _cached_scorecard(self, card_id: uuid.UUID) -> Scorecard | None:
        """The scorecard as this replica last saw it, without asking the store for newer events: should
        another replica have saved it since, the save conflicts and the batch is applied again."""
        cache = self.repository.cache
        assert cache is not None
        with contextlib.suppress(KeyError):
            return cast(Scorecard, cache.get(card_id))
        try:
            card: Scorecard = self.repository.get(card_id, deepcopy_from_cache=False)
        except AggregateNotFoundError:
            return None
        return card

    def take_snapshot(
        self,
        aggregate_id: uuid.UUID,
        version: int | None = None,
        projector_func: ProjectorFunction[Any, Any] = project_aggregate,
    ) -> None:
        """Of the scorecard just saved, as the cache holds it (at `version` or after), rather than replaying the
        store up to `version` as eventsourcing would; spaced as SNAPSHOT_SPACING says. A snapshot only spares
        replays: failing to store one (another replica's of the same version, the database gone) fails no fact."""
        card = self._cached_scorecard(aggregate_id)
        assert self.snapshots is not None and card is not None
        try:
            last_snapshot = self._snapshotted.get(aggregate_id)
        except KeyError:
            last_snapshot = 0
        if card.version - last_snapshot < card.version // SNAPSHOT_SPACING:
            return
        try:
            self.snapshots.put([Scorecard.Snapshot.take(card)])
            self._snapshotted.put(aggregate_id, card.version)
        except Exception as failure:
            logger.warning("no snapshot of a scorecard at version %d: %s", card.version, type(failure).__name__)

    def _forget(self, card_id: uuid.UUID) -> None:
        with contextlib.suppress(KeyError):
            self.repository.cache.get(card_id, evict=True)  # type: ignore[union-attr]
