"""Use cases of the evaluation campaign: each step loads the campaign, checks it against the standings
as they are now, and saves one event in scoring's store.

The grades a step relies on (which halls are graded, which assessed) come from `standings`, as the
grades endpoint serves them; closing freezes them with each hall's components and certified grade.
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.scoring import read_model, standings
from services.scoring.application import ScoringApplication
from services.scoring.campaign import Actor, Campaign, OutOfOrder, RosterHall, campaign_id
from services.scoring.policy import ScoringPolicy, months_of
from services.scoring.scorecard import PeriodFacts, score
from shared.clock import Clock
from shared.organisation import OrgUnit

SAVE_ATTEMPTS = 3  # two units deciding at once: the later one is checked again against the other's step


class CampaignNotFound(Exception):
    pass


class CampaignExists(Exception):
    pass


class Campaigns:
    def __init__(
        self, store: ScoringApplication, pool: asyncpg.Pool, policies: dict[str, ScoringPolicy], clock: Clock
    ) -> None:
        self.store = store
        self.pool = pool
        self.policies = policies
        self.clock = clock

    def actor(self, subject: str, unit: OrgUnit, reason: str) -> Actor:
        return Actor(subject, str(unit), reason, self.clock())

    async def open(self, period: str, scope: OrgUnit, actor: Actor) -> Campaign:
        policy = standings.policy_for(self.policies, period)
        graded = await standings.grades(self.pool, self.policies, period, scope, None)
        hall_ids = [hall.hall_id for hall in graded.halls if hall.status != "not_graded"]
        units = await read_model.units_of(self.pool, hall_ids)
        roster = [RosterHall(hall, *units[hall]) for hall in hall_ids]
        campaign = Campaign.open(period, str(scope), policy.version, roster, actor)
        try:
            await asyncio.to_thread(self.store.save, campaign)
        except IntegrityError:
            raise CampaignExists(f"a campaign for {scope} {period} is open already") from None
        return campaign

    async def get(self, id_: uuid.UUID) -> Campaign:
        try:
            campaign: Campaign = await asyncio.to_thread(self.store.repository.get, id_)
        except AggregateNotFoundError:
            raise CampaignNotFound(f"no campaign {id_}") from None
        return campaign

    async def find(self, period: str, scope: OrgUnit) -> Campaign:
        return await self.get(campaign_id(period, str(scope)))

    def rules(self, campaign: Campaign) -> ScoringPolicy:
        return self.policies[campaign.policy_version]

    async def assessed_halls(self, campaign: Campaign) -> set[str]:
        """The campaign's halls with the evidence a grade needs, as the grades stand now."""
        graded = await standings.grades(self.pool, self.policies, campaign.period, OrgUnit.parse(campaign.scope), None)
        return {hall.hall_id for hall in graded.halls if hall.status == "graded"}

    async def step(self, id_: uuid.UUID, decide: Callable[[Campaign], Awaitable[None]]) -> Campaign:
        """Loads the campaign, lets `decide` check and record a step, and saves it; a step saved by another
        unit meanwhile is taken into account by deciding again."""
        for _ in range(SAVE_ATTEMPTS):
            campaign = await self.get(id_)
            await decide(campaign)
            try:
                await asyncio.to_thread(self.store.save, campaign)
            except IntegrityError:
                continue
            return campaign
        raise OutOfOrder("other steps of this campaign kept being saved first: try again")

    async def close(self, id_: uuid.UUID, actor: Actor) -> Campaign:
        async def freeze(campaign: Campaign) -> None:
            if campaign.closed_at is None and campaign.group_excellent is not None:
                snapshot = await self.snapshot(campaign, actor)
            else:
                snapshot = []  # refused by the campaign itself, naming why
            campaign.close(snapshot, actor)

        return await self.step(id_, freeze)

    async def snapshot(self, campaign: Campaign, actor: Actor) -> list[dict[str, Any]]:
        """Every hall of the scope as it stands at `actor.at`, with its components and certified grade."""
        scope = OrgUnit.parse(campaign.scope)
        graded = await standings.grades(self.pool, self.policies, campaign.period, scope, actor.at)
        units = await read_model.units_of(self.pool, [hall.hall_id for hall in graded.halls])
        components = await self.components(campaign.period, scope, actor)
        outcomes = self.rules(campaign).campaign.outcomes
        rows = []
        for hall in graded.halls:
            certified = campaign.certified_grade(hall.hall_id)
            rows.append(
                {
                    "hall_id": hall.hall_id,
                    "province": units[hall.hall_id][0],
                    "city": units[hall.hall_id][1],
                    "status": hall.status,
                    "score": hall.score,
                    "components": components.get(hall.hall_id, {}),
                    "rank": hall.rank,
                    "provisional_grade": hall.grade,
                    "tied_at_boundary": hall.tied_at_boundary,
                    "claimed_grade": campaign.self_assessments.get(hall.hall_id),
                    "certified_grade": certified,
                    "outcome": outcomes[certified] if certified else "none",
                    "policy_version": graded.policy_version,
                }
            )
        return rows

    async def components(self, period: str, scope: OrgUnit, actor: Actor) -> dict[str, dict[str, float]]:
        """Each hall's component points for the period (a longer period's: the means of its months')."""
        monthly: dict[str, list[dict[str, float]]] = {}
        for month in months_of(period):
            policy = standings.policy_for(self.policies, month)
            for hall in await read_model.facts_of_period(self.pool, month, scope, actor.at):
                points = score(PeriodFacts.of(hall.facts), policy).components
                monthly.setdefault(hall.hall_id, []).append({str(name): value for name, value in points.items()})
        return {
            hall: {name: round(statistics.fmean(month[name] for month in months), 2) for name in months[0]}
            for hall, months in monthly.items()
        }
