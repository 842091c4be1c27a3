"""The batch stage runner against real Postgres: acks after commit, one bad message does not
hold up its batch, bounded deliveries end in the dead-letter table, infrastructure errors wait."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.engine import create_engine
from pinworks_common.db.tables import dead_letters, decisions
from pinworks_common.ledger import Decision, Entries, Ledger
from pinworks_common.ledger.memory import MemoryMessage as FakeMsg
from pinworks_common.ledger.postgres import connection_of
from pinworks_common.stage import Delivery, Publication, StageRunner, Work
from tests.conftest import Database


class RecordingLogic:
    """Writes one decision per message; `poison` bodies raise, `outage` bodies fail like a DB."""

    stage = "test"

    def decode(self, delivery: Delivery) -> str:
        return delivery.data.decode()

    async def apply(self, ledger: Ledger, work: Sequence[Work[str]]) -> Entries:
        for item in work:
            if item.value.startswith("poison"):
                raise ValueError(f"cannot handle {item.value}")
            if item.value.startswith("outage"):
                raise sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("down"))
        return Entries(
            decisions=[Decision(item.value, self.stage, "k", "test", "1", inputs={}, output={},
                                reason="ok", trace_id=item.trace_id) for item in work],
            publications=[Publication("out", item.value.encode(), f"{item.value}:test", "S")
                          for item in work])


@pytest_asyncio.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    """A pipeline service's role: the runner records decisions and dead letters as one."""
    engine = create_engine(database.service_url("verifier"), pool_size=2)
    yield engine
    await engine.dispose()


def runner(engine: AsyncEngine, published: list[Publication]) -> StageRunner[str]:
    async def publish(publication: Publication) -> None:
        published.append(publication)

    return StageRunner(RecordingLogic(), engine, publish, max_deliveries=3,
                       on_dead_letter=lambda d, r: [Publication("escalate", b"", "e", "S")])


async def stored(engine: AsyncEngine, ids: list[str]) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(decisions.c.ticket_id).where(
            decisions.c.ticket_id.in_(ids)))
        return set(rows.scalars())


async def test_a_bad_message_does_not_hold_up_its_batch(engine: AsyncEngine) -> None:
    rid = uuid.uuid4().hex[:8]
    messages = [FakeMsg(f"{rid}-a".encode(), 1), FakeMsg(f"poison-{rid}".encode(), 2),
                FakeMsg(f"{rid}-b".encode(), 3)]
    published: list[Publication] = []
    await runner(engine, published).process(messages)  # type: ignore[arg-type]
    assert [m.acked for m in messages] == [True, False, True]
    assert messages[1].naked is not None and messages[1].naked > 0
    assert await stored(engine, [f"{rid}-a", f"{rid}-b"]) == {f"{rid}-a", f"{rid}-b"}
    assert sorted(p.msg_id for p in published) == [f"{rid}-a:test", f"{rid}-b:test"]


async def test_redelivery_records_nothing_twice(engine: AsyncEngine) -> None:
    rid = uuid.uuid4().hex[:8]
    published: list[Publication] = []
    stage = runner(engine, published)
    await stage.process([FakeMsg(f"{rid}-x".encode(), 1)])  # type: ignore[list-item]
    again = FakeMsg(f"{rid}-x".encode(), 1, num_delivered=2)
    await stage.process([again])  # type: ignore[list-item]
    assert again.acked
    async with engine.connect() as conn:
        count = await conn.execute(text("SELECT count(*) FROM decisions WHERE ticket_id = :t"),
                                   {"t": f"{rid}-x"})
        assert count.scalar_one() == 1
    assert [p.msg_id for p in published] == [f"{rid}-x:test"] * 2, "same id: JetStream drops it"


async def test_a_message_failing_on_its_own_merits_is_dead_lettered_at_the_budget(
    engine: AsyncEngine,
) -> None:
    seq = int(uuid.uuid4().int % 10**12)
    published: list[Publication] = []
    stage = runner(engine, published)
    for delivery in (1, 2):
        retried = FakeMsg(b"poison-dead", seq, num_delivered=delivery)
        await stage.process([retried])  # type: ignore[list-item]
        assert retried.naked is not None and not retried.acked
    message = FakeMsg(b"poison-dead", seq, num_delivered=3)
    await stage.process([message])  # type: ignore[list-item]
    assert message.acked and message.naked is None
    async with engine.connect() as conn:
        row = (await conn.execute(select(dead_letters).where(
            dead_letters.c.stage == "test", dead_letters.c.stream_seq == seq))).one()
    assert row.deliveries == 3
    assert "ValueError: cannot handle poison" in row.error
    assert [p.subject for p in published] == ["pinworks.deadletter.test", "escalate"]


async def test_infrastructure_errors_wait_instead_of_dead_lettering(engine: AsyncEngine) -> None:
    seq = int(uuid.uuid4().int % 10**12)
    message = FakeMsg(b"outage", seq, num_delivered=10)
    await runner(engine, []).process([message])  # type: ignore[list-item]
    assert not message.acked and message.naked == 30.0
    async with engine.connect() as conn:
        rows = await conn.execute(select(dead_letters).where(dead_letters.c.stream_seq == seq))
        assert rows.first() is None


class RaisingSqlState(RecordingLogic):
    """Fails the way a real Postgres does while starting, shutting down or losing a race."""

    def __init__(self, sqlstate: str) -> None:
        self.sqlstate = sqlstate

    async def apply(self, ledger: Ledger, work: Sequence[Work[str]]) -> Entries:
        if any(item.value.startswith("fault") for item in work):
            await connection_of(ledger).execute(text(
                "DO $$ BEGIN RAISE EXCEPTION 'the database system is not yet accepting "
                f"connections' USING ERRCODE = '{self.sqlstate}'; END $$"))
        return await super().apply(ledger, work)


@pytest.mark.parametrize("sqlstate", ["57P03", "57P01", "53300", "40001", "40P01", "08006"])
async def test_database_faults_by_sqlstate_wait_and_never_count(
    engine: AsyncEngine, sqlstate: str
) -> None:
    seq = int(uuid.uuid4().int % 10**12)
    stage = StageRunner(RaisingSqlState(sqlstate), engine, _discard, max_deliveries=3)
    for delivery in range(1, 8):
        message = FakeMsg(b"fault", seq, num_delivered=delivery)
        await stage.process([message])  # type: ignore[list-item]
        assert not message.acked and message.naked is not None
    async with engine.connect() as conn:
        rows = await conn.execute(select(dead_letters).where(dead_letters.c.stream_seq == seq))
        assert rows.first() is None


async def test_deliveries_spent_on_an_outage_do_not_count_against_a_message(
    engine: AsyncEngine,
) -> None:
    seq = int(uuid.uuid4().int % 10**12)
    stage = runner(engine, [])
    await stage.process([FakeMsg(b"outage", seq, num_delivered=9)])  # type: ignore[list-item]
    after_outage = FakeMsg(b"poison-after-outage", seq, num_delivered=10)
    await stage.process([after_outage])  # type: ignore[list-item]
    assert not after_outage.acked and after_outage.naked is not None


async def _discard(publication: Publication) -> None:
    return None


pytestmark = pytest.mark.integration


def count(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_what_was_committed_once(engine: AsyncEngine) -> None:
    """Handled, failed, retried and dead-lettered messages, and audit rows counted only for
    the batch that inserted them and only once it committed (a rolled-back batch counts none)."""
    from pinworks_common.metrics import StageMetrics

    rid = uuid.uuid4().hex[:8]
    stage = runner(engine, [])
    stage.observer = StageMetrics("test", consumer=f"test-{rid}")
    labels = {"stage": "test", "consumer": f"test-{rid}"}
    decisions_before = count("pinworks_decisions_total", stage="test")
    seq = int(uuid.uuid4().int % 10**12)
    await stage.process([FakeMsg(f"{rid}-a".encode(), seq),  # type: ignore[list-item]
                         FakeMsg(b"poison-retry", seq + 1),
                         FakeMsg(f"{rid}-b".encode(), seq + 2)])
    await stage.process([FakeMsg(f"{rid}-a".encode(), seq, num_delivered=2)])  # type: ignore[list-item]
    for delivery in (1, 2, 3):  # dead-lettered on its third failure of its own
        await stage.process([FakeMsg(b"poison-dead", seq + 3,  # type: ignore[list-item]
                                     num_delivered=delivery)])
    assert count("pinworks_stage_messages_total", **labels, result="handled") == 3
    assert count("pinworks_stage_messages_total", **labels, result="failed") == 4
    assert count("pinworks_stage_messages_total", **labels, result="retried") == 3
    assert count("pinworks_stage_messages_total", **labels, result="dead_lettered") == 1
    assert count("pinworks_stage_seconds_count", **labels) == 3
    assert count("pinworks_stage_batch_fallbacks_total", **labels) == 4
    # the failed batch rolled back a and b; their lone retries and the redelivery of a
    # inserted two rows in all, so two are counted
    assert count("pinworks_decisions_total", stage="test") - decisions_before == 2


async def test_a_failed_publish_leaves_its_message_unacked_and_redelivery_duplicates_nothing(
        engine: AsyncEngine) -> None:
    """The batch's publishes are awaited together: one that NATS does not acknowledge leaves
    its message unacked (redelivered later) while the others are acked after their own
    acknowledged publish; the redelivery records nothing twice and republishes the first
    result under the same message id."""
    from nats.errors import TimeoutError as NatsTimeoutError

    rid = uuid.uuid4().hex[:8]
    published: list[Publication] = []
    unreachable = {f"{rid}-b:test"}

    async def publish(publication: Publication) -> None:
        if publication.msg_id in unreachable:
            raise NatsTimeoutError
        published.append(publication)

    stage = StageRunner(RecordingLogic(), engine, publish, max_deliveries=3)
    seq = int(uuid.uuid4().int % 10**12)
    messages = [FakeMsg(f"{rid}-{name}".encode(), seq + n) for n, name in enumerate("abc")]
    await stage.process(messages)  # type: ignore[arg-type]
    assert [m.acked for m in messages] == [True, False, True]
    assert messages[1].naked is not None, "a publish NATS did not acknowledge is retried"
    assert await stored(engine, [f"{rid}-b"]) == {f"{rid}-b"}, "its effects were committed"
    unreachable.clear()
    again = messages[1].redelivered()
    await stage.process([again])  # type: ignore[list-item]
    assert again.acked
    async with engine.connect() as conn:
        found = await conn.execute(text(
            "SELECT ticket_id, count(*) FROM decisions WHERE ticket_id LIKE :p GROUP BY 1"),
            {"p": f"{rid}-%"})
        assert dict(found.all()) == {f"{rid}-{name}": 1 for name in "abc"}
    assert [p.msg_id for p in published if p.msg_id == f"{rid}-b:test"] == [f"{rid}-b:test"]
