"""Use cases of the scoring service: apply a fact to its hall's scorecard for the period."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.scoring.domain import Scorecard, SourceEvent, scorecard_id
from shared.clock import Clock, system_clock
from shared.consumer import TransientError
from shared.scoring_policy import ScoringPolicy, period_start, scoring_policy_at
from shared.tracing import StoresTraceContext

MAX_CONFLICT_RETRIES = 5


class ScoringApplication(StoresTraceContext):
    name = "scoring"

    def __init__(self, env: Mapping[str, str], policies: dict[str, ScoringPolicy], clock: Clock = system_clock) -> None:
        super().__init__(env)
        self.policies = policies
        self.clock = clock  # when each change was recorded: what "as of" audits compare with

    def apply(self, hall_id: str, period: str, source: SourceEvent, fact: dict[str, Any]) -> bool:
        """True if the fact was new to the scorecard; scored under the policy in force when the period began."""
        policy = scoring_policy_at(self.policies, period_start(period))
        for _ in range(MAX_CONFLICT_RETRIES):
            card = self.scorecard(hall_id, period) or Scorecard.open(hall_id, period)
            if not card.apply_fact(policy, source, fact, self.clock()):
                return False
            try:
                self.save(card)
            except IntegrityError:  # the other topic's consumer wrote the same scorecard first
                continue
            return True
        raise TransientError(f"scorecard {hall_id} {period}: still conflicting after {MAX_CONFLICT_RETRIES} attempts")

    def scorecard(self, hall_id: str, period: str) -> Scorecard | None:
        try:
            card: Scorecard = self.repository.get(scorecard_id(hall_id, period))
        except AggregateNotFoundError:
            return None
        return card
