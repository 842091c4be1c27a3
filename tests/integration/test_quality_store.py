"""Quality reviews, corrections and the guard's tightening and loosening, on real Postgres."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.engine import create_engine
from pinworks_common.db.tables import agents, outcomes, quality_events
from pinworks_common.quality import store
from pinworks_common.quality.estimate import Budgets, Limit, ScopeKind, ScopeState

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url, pool_size=2)
    yield engine
    await engine.dispose()


async def answered(engine: AsyncEngine, unit: str, count: int, intent: str = "lost_card",
                   handler: str = "template") -> list[str]:
    """`count` tickets of `unit` answered automatically, as the outcomes table has them."""
    ids = [f"{unit}-{i}" for i in range(count)]
    async with engine.begin() as conn:
        await conn.execute(outcomes.insert(), [
            {"ticket_id": tid, "outcome_key": "automation", "status": "resolved",
             "payload": {"ticket_id": tid, "status": "resolved", "business_unit": unit,
                         "intent": intent, "confidence": 0.9, "handler": handler,
                         "answer": "Here is how.", "resolved_by": "automation"}}
            for tid in ids])
    return ids


async def test_samples_are_reviewed_once_and_only_automatic_answers_enter(
        engine: AsyncEngine) -> None:
    unit = f"q-{uuid.uuid4().hex[:8]}"
    ids = await answered(engine, unit, 2)
    people = await answered(engine, f"{unit}-p", 1, handler="human")
    async with engine.begin() as conn:
        answers = await store.automatic_answers(conn, [*ids, *people, "no-such-ticket"])
        assert sorted(answers) == ids
        assert await store.add_samples(conn, answers.values()) == 2
        assert await store.add_samples(conn, answers.values()) == 0  # a redelivery adds none
        pending = await store.list_reviews(conn, business_units=[unit])
    assert [r.ticket_id for r in pending] == ids and pending[0].intent == "lost_card"
    async with engine.begin() as conn:
        with pytest.raises(store.QualityError, match="intent that was right"):
            await store.mark(conn, pending[0].id, "ana", wrong=True)
        with pytest.raises(store.QualityError, match="no quality review"):
            await store.mark(conn, pending[0].id, "ana", wrong=False, business_units=["other"])
        marked = await store.mark(conn, pending[0].id, "ana", wrong=True,
                                  correct_intent="card_limit")
        assert (marked.status, marked.correct_intent, marked.reviewed_by) == (
            "wrong", "card_limit", "ana")
        with pytest.raises(store.QualityError, match="already marked wrong by ana"):
            await store.mark(conn, pending[0].id, "bo", wrong=False)


async def test_a_correction_marks_the_automatic_answer_wrong(engine: AsyncEngine) -> None:
    unit = f"q-{uuid.uuid4().hex[:8]}"
    first, second = await answered(engine, unit, 2)
    async with engine.begin() as conn:
        assert await store.record_correction(conn, first, "ana", "lost_card") is None
        review = await store.record_correction(conn, first, "ana", "card_limit")
        assert review is not None and review.source == store.CORRECTION
        assert review.status == store.WRONG and review.intent == "lost_card"
        # a pending sample of the same answer is marked, not duplicated
        await store.add_samples(conn, (await store.automatic_answers(conn, [second])).values())
        corrected = await store.record_correction(conn, second, "bo", "fraud")
        assert corrected is not None and corrected.source == store.SAMPLE
        assert await store.list_reviews(conn, business_units=[unit]) == []


async def test_the_guard_tightens_once_and_an_operator_loosens(engine: AsyncEngine) -> None:
    unit = f"q-{uuid.uuid4().hex[:8]}"
    intent, group = f"intent_{unit[2:]}", f"group-{unit}"  # the group is this test's alone
    budgets = Budgets(default=Limit(0.05, 0.95), groups={group: frozenset({intent})})
    ids = await answered(engine, unit, 20, intent=intent)
    ops = f"ops-{unit}"
    async with engine.begin() as conn:
        await conn.execute(agents.insert().values(name=ops, password_hash="x",
                                                  business_units=[unit]))
        await store.add_samples(conn, (await store.automatic_answers(conn, ids)).values())
        for index, review in enumerate(await store.list_reviews(conn, business_units=[unit])):
            await store.mark(conn, review.id, "ana", wrong=index < 4,
                             correct_intent="card_limit" if index < 4 else None)
        verdicts, newly = await store.evaluate(conn, budgets, min_reviews=20)
    key = (ScopeKind.business_unit, unit)
    assert sorted((e.kind, e.name) for e in newly) == [key, (ScopeKind.intent_group, group)]
    assert {(v.estimate.kind, v.estimate.name) for v in verdicts} >= {key}
    async with engine.begin() as conn:
        _, again = await store.evaluate(conn, budgets, min_reviews=20)
        assert key not in [(e.kind, e.name) for e in again]  # tightened once, recorded once
        reason = (await store.tightened(conn))[key]
        assert "20 judged" in reason and "upper bound" in reason
        scope = (await store.scopes(conn))[key]
        assert scope.state is ScopeState.tightened and scope.wrong == 4
        with pytest.raises(store.QualityError, match="--reason"):
            await store.loosen(conn, ScopeKind.business_unit, unit, ops, " ")
        with pytest.raises(store.QualityError, match=f"no agent named 'nobody-{unit}'"):
            await store.loosen(conn, ScopeKind.business_unit, unit, f"nobody-{unit}", "fixed")
        assert (await store.scopes(conn))[key].state is ScopeState.tightened
        loosened = await store.loosen(conn, ScopeKind.business_unit, unit, ops, "model fixed")
        assert loosened.state is ScopeState.ok
        with pytest.raises(store.QualityError, match="not tightened"):
            await store.loosen(conn, ScopeKind.business_unit, unit, ops, "again")
        # evidence restarts at the loosening: the old wrong answers no longer count
        verdicts, newly = await store.evaluate(conn, budgets, min_reviews=20)
        assert key not in [(e.kind, e.name) for e in newly]
        assert key not in await store.tightened(conn)
        actions = (await conn.execute(
            select(quality_events.c.action, quality_events.c.actor)
            .where(quality_events.c.name == unit).order_by(quality_events.c.id))).all()
    assert [tuple(a) for a in actions] == [("tighten", "quality-guard"), ("loosen", ops)]
