"""Scoring's read model on PostgreSQL: every score change its store holds is copied once, in store order,
those stored before the read model existed included, and the grades read them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from devstack.postgres import EmbeddedPostgres
from services.scoring import grades_table, read_model, standings
from services.scoring.application import SNAPSHOT_INTERVAL, ScoringApplication
from services.scoring.domain import Scorecard, SourceEvent
from services.scoring.main import MIGRATIONS
from services.scoring.policy import ScoringPolicy, load_scoring_policies
from shared.contracts import (
    AnyScoringFact,
    ComplaintRegisteredFact,
    FirstResponseStoppedFact,
    HallChangedV1,
    HallRegisteredV1,
    IntegrationEvent,
    ResponseBreachedFact,
    build_event,
)
from shared.database import create_pool
from shared.migrations import migrate_schema
from shared.organisation import OrgUnit
from shared.settings import ServiceSettings
from tests.integration.harness import eventually

NOW = datetime(2026, 11, 16, 2, tzinfo=UTC)
POLICIES = load_scoring_policies()


@pytest.fixture
async def scoring(postgres: EmbeddedPostgres) -> AsyncIterator[tuple[ScoringApplication, asyncpg.Pool]]:
    """Scoring's store and tables in a schema of their own, and a pool on it; nothing copied yet."""
    schema = f"scoring_{uuid.uuid4().hex[:12]}"
    pool = await create_pool(postgres.url, schema)
    application = ScoringApplication(
        ServiceSettings(database_url=postgres.url).eventsourcing_env(schema), POLICIES, lambda: NOW
    )
    await migrate_schema(postgres.url, schema, MIGRATIONS)
    try:
        yield application, pool
    finally:
        application.close()
        await pool.close()


def apply(application: ScoringApplication, hall_id: str, fact: AnyScoringFact) -> None:
    assert application.apply(hall_id, "2026-11", SourceEvent(uuid.uuid4(), "Event", NOW), fact)


async def copy_all(application: ScoringApplication, pool: asyncpg.Pool) -> int:
    copies = 0
    while await read_model.copy_score_changes(application, pool, batch_size=2):
        copies += 1
    return copies


async def test_score_changes_stored_before_the_read_model_are_copied_once_in_order_and_graded(
    scoring: tuple[ScoringApplication, asyncpg.Pool],
) -> None:
    application, pool = scoring
    late, answered = uuid.uuid4(), uuid.uuid4()
    apply(application, "ZJ-01", ResponseBreachedFact(subject=late))  # held until its registration
    for complaint in (late, answered):
        apply(application, "ZJ-01", ComplaintRegisteredFact(subject=complaint, priority="normal", channel="app"))
    apply(application, "ZJ-01", FirstResponseStoppedFact(subject=answered, breached=False))

    copies = await copy_all(application, pool)
    copied_again = await copy_all(application, pool)

    card = application.scorecard("ZJ-01", "2026-11")
    assert card is not None
    applied = [e for e in application.repository.event_store.get(card.id) if isinstance(e, Scorecard.FactApplied)]
    rows = await pool.fetch("SELECT scorecard_version, source_event_id, score FROM score_changes ORDER BY 1")
    assert [(row["source_event_id"], row["score"]) for row in rows] == [
        (e.source_event_id, e.score_after) for e in applied
    ]
    assert copies >= 2 and copied_again == 0  # batches of two events: more than one copy was needed

    hall = HallRegisteredV1(
        hall_id="ZJ-01", name="西湖营业厅", province="浙江", city="杭州", level=1, ownership="self_operated"
    )
    event = build_event(hall, source="complaints", aggregate_id=uuid.uuid4(), aggregate_version=1, occurred_at=NOW)
    async with pool.acquire() as connection:
        await read_model.record_hall(connection, event, recorded_at=datetime(2026, 10, 20, tzinfo=UTC))
    graded = await standings.grades(pool, POLICIES, "2026-11", OrgUnit(("浙江",)), as_of=None)
    assert [(h.hall_id, h.score) for h in graded.halls] == [("ZJ-01", card.score)]
    before_any = await standings.grades(
        pool, POLICIES, "2026-11", OrgUnit(("浙江",)), as_of=datetime(2026, 11, 1, tzinfo=UTC)
    )
    assert [h.score for h in before_any.halls] == [100]  # nothing recorded yet then: the empty scorecard's
    before_the_hall = await standings.grades(
        pool, POLICIES, "2026-11", OrgUnit(("浙江",)), as_of=datetime(2026, 10, 19, tzinfo=UTC)
    )
    assert before_the_hall.halls == []  # scoring did not know of it yet


def registered(hall_id: str) -> IntegrationEvent:
    hall = HallRegisteredV1(
        hall_id=hall_id, name="营业厅", province="浙江", city="杭州", level=1, ownership="self_operated"
    )
    return build_event(hall, source="complaints", aggregate_id=uuid.uuid4(), aggregate_version=1, occurred_at=NOW)


async def test_a_change_committed_while_the_grades_are_refreshed_is_graded_then_or_marked_for_the_next_refresh(
    scoring: tuple[ScoringApplication, asyncpg.Pool],
) -> None:
    """The month is marked already when a transaction records a hall and marks it again; a refresh starts
    before that transaction commits. The new hall must end up in the table, or its month still marked."""
    _, pool = scoring
    async with pool.acquire() as connection:
        await read_model.record_hall(connection, registered("ZJ-01"), recorded_at=NOW)
    async with pool.acquire() as recording, recording.transaction():
        await read_model.record_hall(recording, registered("ZJ-02"), recorded_at=NOW)
        refreshing = asyncio.create_task(grades_table.refresh(pool, POLICIES))

        async def done_or_waiting() -> bool:
            waiting = await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            return refreshing.done() or waiting > 0

        assert await eventually(done_or_waiting)
    await refreshing
    graded = {row["hall_id"] for row in await pool.fetch("SELECT hall_id FROM hall_grades WHERE period = '2026-11'")}
    still_marked = await pool.fetchval("SELECT count(*) FROM periods_to_grade WHERE period = '2026-11'")
    assert graded == {"ZJ-01", "ZJ-02"} or still_marked


async def test_a_hall_that_changes_level_mid_period_is_graded_with_its_level_as_the_policy_says(
    scoring: tuple[ScoringApplication, asyncpg.Pool],
) -> None:
    _, pool = scoring
    mid_november = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)
    changes = [
        HallChangedV1(
            hall_id="ZJ-09", effective_from=mid_november, name=None, level=4, ownership=None, closed=None, at=NOW
        ),
        # Recorded later, effective earlier: the level stays 4 from mid-month; the closure comes in December.
        HallChangedV1(
            hall_id="ZJ-09",
            effective_from=datetime(2026, 12, 3, tzinfo=UTC),
            name=None,
            level=None,
            ownership=None,
            closed=True,
            at=NOW,
        ),
    ]
    async with pool.acquire() as connection:
        await read_model.record_hall(connection, registered("ZJ-09"), recorded_at=datetime(2026, 10, 20, tzinfo=UTC))
        for version, change in enumerate(changes, start=2):
            event = build_event(
                change, source="complaints", aggregate_id=uuid.uuid4(), aggregate_version=version, occurred_at=NOW
            )
            await read_model.record_hall_change(connection, event, recorded_at=NOW)
    at_end = POLICIES["2026-01"]  # in force for both months here; graded as the hall was at a period's end
    at_start = at_end.model_copy(update={"hall_as_at": "period_start"})

    async def reason(policy: ScoringPolicy, period: str) -> str | None:
        graded = await standings.grades(pool, {policy.version: policy}, period, OrgUnit(("浙江",)), as_of=None)
        return next(h.ungraded_reason for h in graded.halls if h.hall_id == "ZJ-09")

    assert await reason(at_end, "2026-11") == "level-4 hall: only levels 1 to 3 are graded"
    assert (await reason(at_start, "2026-11") or "").startswith("not assessed")  # level 1 then: graded, if inspected
    assert await reason(at_end, "2026-12") == "closed hall: not graded"
    recorded_before = await read_model.latest_scores(
        pool, "2026-11", OrgUnit(("浙江",)), datetime(2026, 11, 1, tzinfo=UTC), at_end.hall_instant("2026-11")
    )
    assert [(hall.level, hall.closed) for hall in recorded_before if hall.hall_id == "ZJ-09"] == [(1, False)]


async def test_a_replica_with_nothing_cached_loads_a_scorecard_from_its_snapshot_in_postgresql(
    postgres: EmbeddedPostgres,
    scoring: tuple[ScoringApplication, asyncpg.Pool],
) -> None:
    application, pool = scoring
    complaints = [uuid.uuid4() for _ in range(SNAPSHOT_INTERVAL // 2 + 1)]  # two facts each: past one interval
    for complaint in complaints:
        apply(application, "H-SNAP", ComplaintRegisteredFact(subject=complaint, priority="normal", channel="app"))
        apply(application, "H-SNAP", ResponseBreachedFact(subject=complaint))
    card = application.scorecard("H-SNAP", "2026-11")
    assert card is not None
    schema = application.recorder.datastore.schema  # type: ignore[attr-defined]
    snapshotted = await pool.fetchval(
        f'SELECT max(originator_version) FROM "{schema}".scoring_snapshots WHERE originator_id = $1',  # noqa: S608
        card.id,
    )
    assert snapshotted == SNAPSHOT_INTERVAL
    # Marked, to tell a load from the snapshot from a replay of every event: no event after it names the hall.
    await pool.execute(
        f'UPDATE "{schema}".scoring_snapshots'  # noqa: S608
        " SET state = convert_to(replace(convert_from(state, 'UTF8'), '\"H-SNAP\"', '\"H-MARKED\"'), 'UTF8')"
    )

    cold = ScoringApplication(
        ServiceSettings(database_url=postgres.url).eventsourcing_env(schema), POLICIES, lambda: NOW
    )
    try:
        loaded = cold.scorecard("H-SNAP", "2026-11")
        assert loaded is not None and loaded.hall_id == "H-MARKED"
        assert (loaded.version, loaded.score, loaded.facts, loaded.seen) == (
            card.version,
            card.score,
            card.facts,
            card.seen,
        )
    finally:
        cold.close()
