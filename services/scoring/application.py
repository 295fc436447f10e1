"""Use cases of the scoring service: apply a fact to its hall's scorecard for the period."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Mapping

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.scoring.domain import Scorecard, SourceEvent, scorecard_id
from services.scoring.policy import ScoringPolicy, period_start, scoring_policy_at
from shared.clock import Clock, system_clock
from shared.consumer import TransientError
from shared.contracts import AnyScoringFact
from shared.tracing import StoresTraceContext

MAX_CONFLICT_RETRIES = 5
# Hall-months kept in memory, each brought up to date with the events stored since (by any replica)
# before use: replaying a busy hall's month for every fact would cost more with each fact.
CACHED_SCORECARDS = 2000


class ScoringApplication(StoresTraceContext):
    name = "scoring"

    def __init__(self, env: Mapping[str, str], policies: dict[str, ScoringPolicy], clock: Clock = system_clock) -> None:
        super().__init__({**env, "AGGREGATE_CACHE_MAXSIZE": str(CACHED_SCORECARDS)})
        self.policies = policies
        self.clock = clock  # when each change was recorded: what "as of" audits compare with
        # Facts are applied to the cached scorecard itself, not to a copy of it, one at a time.
        self._applying = threading.Lock()

    def apply(self, hall_id: str, period: str, source: SourceEvent, fact: AnyScoringFact) -> bool:
        """True if the fact was new to the scorecard; scored under the policy in force when the period began."""
        policy = scoring_policy_at(self.policies, period_start(period))
        card_id = scorecard_id(hall_id, period)
        with self._applying:
            for _ in range(MAX_CONFLICT_RETRIES):
                card = self._cached_scorecard(card_id) or Scorecard.open(hall_id, period)
                if not card.apply_fact(policy, source, fact, self.clock()):
                    return False
                try:
                    self.save(card)
                except Exception as failure:
                    self._forget(card_id)  # the cached one holds events that were not stored
                    if isinstance(failure, IntegrityError):  # another consumer wrote the scorecard first
                        continue
                    raise
                return True
        raise TransientError(f"scorecard {hall_id} {period}: still conflicting after {MAX_CONFLICT_RETRIES} attempts")

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
        try:
            card: Scorecard = self.repository.get(card_id, deepcopy_from_cache=False)
        except AggregateNotFoundError:
            return None
        return card

    def _forget(self, card_id: uuid.UUID) -> None:
        with contextlib.suppress(KeyError):
            self.repository.cache.get(card_id, evict=True)  # type: ignore[union-attr]
