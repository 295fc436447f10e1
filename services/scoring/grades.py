"""Hall grades within an evaluation scope: thresholds first, then the quotas.

Graded halls are self-operated halls of levels 1 to 3; the others are listed ungraded with
the reason. A graded hall's grade starts from its score's threshold. At most the quota's
share of the graded halls (rounded down) may be excellent; those over it, by rank, drop to
good, and likewise from good to meets. Tie rule: equal scores share a rank, and when a
quota's last place falls inside a group of equal scores, the whole group drops: no hall
gains a place by the accident of its id or the order of events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.scoring.policy import Grade, ScoringPolicy


@dataclass(frozen=True)
class Standing:
    hall_id: str
    level: int
    ownership: str
    score: float


@dataclass(frozen=True)
class GradedHall:
    hall_id: str
    score: float
    rank: int | None
    grade: Grade | None
    ungraded_reason: str | None = None
    dropped_by_quota: bool = False


def ungraded_reason(standing: Standing) -> str | None:
    if standing.ownership != "self_operated":
        return "partner hall: not graded"
    if standing.level not in (1, 2, 3):
        return f"level-{standing.level} hall: only levels 1 to 3 are graded"
    return None


def grade_halls(standings: list[Standing], policy: ScoringPolicy) -> list[GradedHall]:
    """Every hall of the scope, graded ones by rank first, then the ungraded ones."""
    graded = sorted((s for s in standings if ungraded_reason(s) is None), key=lambda s: (-s.score, s.hall_id))
    grades = {s.hall_id: policy.grade_thresholds.grade_of(s.score) for s in graded}
    dropped: set[str] = set()
    quotas: tuple[tuple[Grade, float, Grade], ...] = (
        ("excellent", policy.quotas.excellent, "good"),
        ("good", policy.quotas.good, "meets"),
    )
    for grade, quota, next_grade in quotas:
        holders = [s for s in graded if grades[s.hall_id] == grade]
        keep = _places(holders, math.floor(quota * len(graded)))
        for standing in holders[keep:]:
            grades[standing.hall_id] = next_grade
            dropped.add(standing.hall_id)
    ranks = _competition_ranks([s.score for s in graded])
    result = [
        GradedHall(s.hall_id, s.score, rank, grades[s.hall_id], dropped_by_quota=s.hall_id in dropped)
        for s, rank in zip(graded, ranks, strict=True)
    ]
    ungraded = sorted((s for s in standings if ungraded_reason(s) is not None), key=lambda s: s.hall_id)
    return result + [GradedHall(s.hall_id, s.score, None, None, ungraded_reason(s)) for s in ungraded]


def _places(holders: list[Standing], quota: int) -> int:
    """How many of `holders` (best first) keep their grade: the quota, less a tied group it would split."""
    keep = min(quota, len(holders))
    if keep < len(holders):
        while keep > 0 and holders[keep - 1].score == holders[keep].score:
            keep -= 1
    return keep


def _competition_ranks(scores: list[float]) -> list[int]:
    """1, 2, 2, 4: equal scores share the better rank."""
    ranks: list[int] = []
    for position, value in enumerate(scores):
        ranks.append(ranks[-1] if position and value == scores[position - 1] else position + 1)
    return ranks
