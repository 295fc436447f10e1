"""Hall grades within an evaluation scope: evidence first, then thresholds, then the quotas.

Graded halls are self-operated halls of levels 1 to 3; the others are listed "not graded" with
the reason. A graded hall without the evidence the policy asks for in the period (by default one
inspection) is listed "not assessed": it takes no grade, no rank and no share of the quota base,
so that knowing nothing of a hall never outranks a measured one.

An assessed hall's grade starts from its score's threshold. At most the quota's share of the
assessed halls (rounded down) may be excellent; those over it, by rank, drop to good, and likewise
from good to meets. Rank is by score, then by the policy's tie-break keys in order; halls equal on
all of them share a rank. When a quota's last place falls inside such a group, the halls of the
group are "tied at the boundary", and until the campaign's reviewing level decides, the whole group
drops: no hall gains a place by the accident of its id or the order of events.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Literal

from services.scoring.policy import Grade, ScoringPolicy

Status = Literal["graded", "not_graded", "not_assessed"]


@dataclass(frozen=True)
class Standing:
    hall_id: str
    level: int
    ownership: str
    score: float
    inspections: int  # in the period: the evidence a grade needs
    tie_break: tuple[float, ...] = ()  # the policy's tie-break values; needed only where scores are equal
    closed: bool = False  # as the hall was at the instant the policy grades it at (`hall_as_at`)


@dataclass(frozen=True)
class GradedHall:
    hall_id: str
    score: float
    rank: int | None
    grade: Grade | None
    status: Status
    ungraded_reason: str | None = None
    dropped_by_quota: bool = False
    tied_at_boundary: bool = False
    tie_break: tuple[float, ...] = ()


def ungraded_reason(standing: Standing) -> str | None:
    if standing.closed:
        return "closed hall: not graded"
    if standing.ownership != "self_operated":
        return "partner hall: not graded"
    if standing.level not in (1, 2, 3):
        return f"level-{standing.level} hall: only levels 1 to 3 are graded"
    return None


def unassessed_reason(standing: Standing, policy: ScoringPolicy) -> str | None:
    needed = policy.evidence.inspections
    if standing.inspections < needed:
        return f"not assessed: {standing.inspections} inspection(s) in the period, the policy asks for {needed}"
    return None


def _standing_key(standing: Standing) -> tuple[float, ...]:
    """What ranks a hall: equal keys share a rank."""
    return (standing.score, *standing.tie_break)


def _assessed(standings: list[Standing], policy: ScoringPolicy) -> list[Standing]:
    """The graded halls with the evidence the policy asks for: those ranked and counted for the quotas."""
    return [s for s in standings if ungraded_reason(s) is None and unassessed_reason(s, policy) is None]


def grade_halls(standings: list[Standing], policy: ScoringPolicy) -> list[GradedHall]:
    """Every hall of the scope: assessed ones by rank first, then those not assessed, then the ungraded."""
    assessed = sorted(
        _assessed(standings, policy), key=lambda s: (tuple(-value for value in _standing_key(s)), s.hall_id)
    )
    grades = {s.hall_id: policy.grade_thresholds.grade_of(s.score) for s in assessed}
    dropped: set[str] = set()
    tied: set[str] = set()
    quotas: tuple[tuple[Grade, float, Grade], ...] = (
        ("excellent", policy.quotas.excellent, "good"),
        ("good", policy.quotas.good, "meets"),
    )
    for grade, quota, next_grade in quotas:
        holders = [s for s in assessed if grades[s.hall_id] == grade]
        keep, split = _places(holders, math.floor(quota * len(assessed)))
        tied.update(s.hall_id for s in split)
        for standing in holders[keep:]:
            grades[standing.hall_id] = next_grade
            dropped.add(standing.hall_id)
    ranks = _competition_ranks([_standing_key(s) for s in assessed])
    result = [
        GradedHall(
            s.hall_id,
            s.score,
            rank,
            grades[s.hall_id],
            "graded",
            dropped_by_quota=s.hall_id in dropped,
            tied_at_boundary=s.hall_id in tied,
            tie_break=s.tie_break,
        )
        for s, rank in zip(assessed, ranks, strict=True)
    ]
    unassessed = sorted(
        (s for s in standings if ungraded_reason(s) is None and unassessed_reason(s, policy) is not None),
        key=lambda s: s.hall_id,
    )
    result += [
        GradedHall(s.hall_id, s.score, None, None, "not_assessed", unassessed_reason(s, policy)) for s in unassessed
    ]
    ungraded = sorted((s for s in standings if ungraded_reason(s) is not None), key=lambda s: s.hall_id)
    return result + [GradedHall(s.hall_id, s.score, None, None, "not_graded", ungraded_reason(s)) for s in ungraded]


def tied_on_score(standings: list[Standing], policy: ScoringPolicy) -> set[str]:
    """The assessed halls whose score another assessed hall shares: only their tie-break values matter."""
    assessed = _assessed(standings, policy)
    halls_per_score = collections.Counter(s.score for s in assessed)
    return {s.hall_id for s in assessed if halls_per_score[s.score] > 1}


def _places(holders: list[Standing], quota: int) -> tuple[int, list[Standing]]:
    """How many of `holders` (best first) keep their grade, and the group tied at the quota's boundary
    (empty if none): the quota, less the part of a group equal on every key that it would split."""
    keep = min(quota, len(holders))
    if keep in (0, len(holders)) or _standing_key(holders[keep - 1]) != _standing_key(holders[keep]):
        return keep, []
    boundary = _standing_key(holders[keep])
    group = [s for s in holders if _standing_key(s) == boundary]
    return keep - sum(_standing_key(s) == boundary for s in holders[:keep]), group


def _competition_ranks(keys: list[tuple[float, ...]]) -> list[int]:
    """1, 2, 2, 4: equal keys share the better rank."""
    ranks: list[int] = []
    for position, key in enumerate(keys):
        ranks.append(ranks[-1] if position and key == keys[position - 1] else position + 1)
    return ranks
