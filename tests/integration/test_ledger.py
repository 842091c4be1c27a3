"""The ledger's idempotency rule, once, against both stores: Postgres (the services') and the
in-memory one (the component tests'). Whatever passes for one must pass for the other, so the
fake keeps Postgres's semantics.

The rule: a record counts once by its natural key; what a redelivery hands on is built from the
first stored record, under the same message id; a failed transaction leaves nothing behind.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from pinworks_common.db.engine import create_engine
from pinworks_common.db.tables import metadata
from pinworks_common.ledger import Books, records
from pinworks_common.ledger.book import TABLE_KEYS
from pinworks_common.ledger.memory import MemoryBooks
from pinworks_common.ledger.postgres import PostgresBooks, connection_of
from pinworks_contracts.messages import DeadLetter, Outcome
from pinworks_contracts.subjects import OutcomeStatus

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgres", "memory"])
def database(request: pytest.FixtureRequest) -> str | None:
    """The migrated database for the Postgres store; None for the in-memory one."""
    return request.getfixturevalue("migrated_database_url") if request.param == "postgres" \
        else None


@pytest_asyncio.fixture
async def books(database: str | None) -> AsyncIterator[Books]:
    if database is None:
        yield MemoryBooks()
        return
    engine = create_engine(database, pool_size=2)
    yield PostgresBooks(engine)
    await engine.dispose()


async def rows(books: Books, table: str, **where: Any) -> list[dict[str, Any]]:
    """The stored rows of `table` matching `where`, from either store."""
    if isinstance(books, MemoryBooks):
        return [row for row in books.store.rows(table)
                if all(row[name] == value for name, value in where.items())]
    target = metadata.tables[table]
    async with books.reading() as ledger:
        found = await connection_of(ledger).execute(select(target).where(
            *(target.c[name] == value for name, value in where.items())))
        return [dict(row._mapping) for row in found]


def ticket() -> str:
    return f"L-{uuid.uuid4().hex[:10]}"


def decision(ticket_id: str, output: dict[str, Any], key: str = "route") -> records.Decision:
    return records.Decision(ticket_id, "ledger-test", key, "test", "1", inputs={"n": 1}, output=output,
                    reason="because", trace_id="t")


def hand_on(ref: records.DecisionRef) -> records.HandOff:
    return records.HandOff(ref, lambda stored: records.Publication(
        "next", repr(sorted(stored.items())).encode(), f"{ref.ticket_id}:next", "S"))


async def test_a_decision_is_stored_once_and_handed_on_as_first_stored(books: Books) -> None:
    ticket_id = ticket()
    first, second = decision(ticket_id, {"handler": "kb"}), decision(ticket_id, {"handler": "x"})
    async with books.transaction() as ledger:
        once = await ledger.record(records.Entries(decisions=[first], handoffs=[hand_on(first.ref)]))
    async with books.transaction() as ledger:
        again = await ledger.record(records.Entries(decisions=[second], handoffs=[hand_on(first.ref)]))
        assert await ledger.decided([first.ref]) == {first.ref: {"handler": "kb"}}
    assert [d.ref for d in once.new_decisions] == [first.ref] and again.new_decisions == []
    assert once.publications == again.publications, "same payload and message id"
    assert len(await rows(books, "decisions", ticket_id=ticket_id)) == 1


async def test_a_decision_stored_without_a_hand_off_is_given_as_stored_when_asked_later(
        books: Books, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its output is read back from the statement's text only when asked for, and then as a
    JSON column gives it back (a tuple as a list; the original, not the redacted copy), without
    reading the store again."""
    ticket_id = ticket()
    first = decision(ticket_id, {"reply": "Hi Jane Doe", "pair": ("a", 1)}, key="assist")
    async with books.transaction() as ledger:
        recorded = await ledger.record(records.Entries(decisions=[first]))

        async def unread(refs: object) -> dict[records.DecisionRef, Any]:
            raise AssertionError("read again from the store")

        monkeypatch.setattr(ledger.store, "stored_decisions", unread)
        assert await ledger.decided([first.ref]) == {
            first.ref: {"reply": "Hi Jane Doe", "pair": ["a", 1]}}
    assert recorded.new_decisions == [first]


async def test_a_batch_with_two_copies_stores_the_first(books: Books) -> None:
    ticket_id = ticket()
    first, copy = decision(ticket_id, {"n": 1}), decision(ticket_id, {"n": 2})
    async with books.transaction() as ledger:
        recorded = await ledger.record(records.Entries(decisions=[first, copy],
                                               handoffs=[hand_on(first.ref)] * 2))
    assert recorded.new_decisions == [first]
    assert recorded.publications[0] == recorded.publications[1]
    assert [row["output"] for row in await rows(books, "decisions", ticket_id=ticket_id)] == [
        {"n": 1}]


async def test_a_cost_counts_once_to_six_decimal_places(books: Books) -> None:
    ticket_id = ticket()
    entry = records.CostEntry(ticket_id, "retail", "specialist:kb", "draft:kb", Decimal("0.0123"))
    other = records.CostEntry(ticket_id, "retail", "classifier", "classifier", Decimal("0.0000004"))
    for _ in range(2):
        async with books.transaction() as ledger:
            await ledger.record(records.Entries(costs=[entry, other]))
    async with books.reading() as ledger:
        assert await ledger.costs([ticket_id, ticket()]) == {ticket_id: Decimal("0.012300")}


async def test_an_outcome_is_published_as_first_stored(books: Books) -> None:
    ticket_id = ticket()

    def outcome(reason: str) -> records.OutcomeEntry:
        return records.OutcomeEntry("automation", Outcome(
            ticket_id=ticket_id, status=OutcomeStatus.ESCALATED, business_unit="retail",
            reasons=[reason], cost_usd=Decimal("0.5"), resolved_by="automation",
            trace_id="t", decided_at=datetime(2026, 1, 1, tzinfo=UTC)), {"traceparent": "p"})

    async with books.transaction() as ledger:
        first = await ledger.record(records.Entries(outcomes=[outcome("first")]))
    async with books.transaction() as ledger:
        again = await ledger.record(records.Entries(outcomes=[outcome("recomputed")]))
    assert again.outcomes[0].reasons == ["first"]
    assert first.publications == again.publications
    [publication] = again.publications
    assert publication.msg_id.startswith(f"{ticket_id}:outcome:automation:")
    assert len(publication.msg_id) > len(f"{ticket_id}:outcome:automation:") + 20, "a nonce"
    assert publication.subject == "tickets.outcome.escalated.support"
    assert publication.headers == {"traceparent": "p"}


async def test_accountability_and_dead_letters_are_stored_once(books: Books) -> None:
    ticket_id, seq = ticket(), int(uuid.uuid4().int % 10**12)
    event = records.AccountabilityEntry(ticket_id, "router:route", "router", "route to kb", "1", {})
    letter = DeadLetter(stage="ledger-test", subject="s", stream_sequence=seq, deliveries=3,
                        error="boom", ticket_id=ticket_id, payload_excerpt="{}")
    for _ in range(2):
        async with books.transaction() as ledger:
            await ledger.record(records.Entries(accountability=[event, event]))
            await ledger.dead_letter(letter)
    assert len(await rows(books, "accountability", ticket_id=ticket_id)) == 1
    assert len(await rows(books, "dead_letters", stream_seq=seq)) == 1


async def test_a_failed_transaction_stores_nothing(books: Books) -> None:
    ticket_id = ticket()
    with pytest.raises(RuntimeError):
        async with books.transaction() as ledger:
            await ledger.record(records.Entries(
                decisions=[decision(ticket_id, {})],
                costs=[records.CostEntry(ticket_id, "retail", "c", "k", Decimal(1))]))
            raise RuntimeError("the batch failed after recording")
    assert await rows(books, "decisions", ticket_id=ticket_id) == []
    async with books.reading() as ledger:
        assert await ledger.costs([ticket_id]) == {}


async def test_undecided_skips_the_stored_and_second_copies(books: Books) -> None:
    done, todo = ticket(), ticket()
    async with books.transaction() as ledger:
        await ledger.record(records.Entries(decisions=[decision(done, {})]))
    async with books.reading() as ledger:
        left = await ledger.undecided([done, todo, todo],
                                      lambda t: records.DecisionRef(t, "ledger-test", "route"))
    assert left == [todo]


def ticket_row(ticket_id: str, seq: int) -> dict[str, Any]:
    return {"ticket_id": ticket_id, "business_unit": "retail", "subject": None, "body": "hi",
            "customer_id": None, "channel": None, "metadata": {"tier": ("vip",)},
            "submission_seq": seq, "trace_id": f"trace-{seq}",
            "received_at": datetime(2026, 1, 1, tzinfo=UTC), "intent": None,
            "confidence": None, "classification": None}


async def test_the_first_stored_row_wins(books: Books) -> None:
    ticket_id = ticket()
    async with books.transaction() as ledger:
        first = await ledger.first_stored("tickets", [ticket_row(ticket_id, 1),
                                                      ticket_row(ticket_id, 2)])
    async with books.transaction() as ledger:
        again = await ledger.first_stored("tickets", [ticket_row(ticket_id, 3)])
        assert await ledger.existing("tickets", "ticket_id", [ticket_id, ticket()]) == {ticket_id}
    for stored in (first, again):
        row = stored[(ticket_id,)]
        assert (row["submission_seq"], row["trace_id"]) == (1, "trace-1")
        assert row["metadata"] == {"tier": ["vip"]}, "JSON as the column gives it back"


async def test_stored_rows_are_the_recorded_rows_only(books: Books) -> None:
    ticket_id = ticket()
    async with books.transaction() as ledger:
        await ledger.first_stored("tickets", [ticket_row(ticket_id, 4)])
    async with books.reading() as ledger:
        found = await ledger.stored_rows("tickets", "ticket_id", [ticket_id, ticket()])
        assert await ledger.stored_rows("tickets", "ticket_id", []) == []
    assert [(row["ticket_id"], row["body"], row["metadata"]) for row in found] == [
        (ticket_id, "hi", {"tier": ["vip"]})]


async def test_insert_once_returns_only_the_new_rows(books: Books) -> None:
    seq = int(uuid.uuid4().int % 10**12)
    row = {"stream_seq": seq, "subject": "s", "ticket_id": None, "business_unit": None,
           "reasons": ["bad"], "raw_payload": "{", "payload_bytes": 1}
    async with books.transaction() as ledger:
        assert await ledger.insert_once("rejected_payloads", [row, row]) == [row]
    async with books.transaction() as ledger:
        assert await ledger.insert_once("rejected_payloads", [row]) == []


def queued(ticket_id: str, attempt: int, note: str) -> dict[str, Any]:
    return {"ticket_id": ticket_id, "business_unit": f"unit-{attempt}", "status": "open",
            "priority": 10 + attempt, "source_stage": "verifier", "reasons": [note],
            "context": {f"attempt_{attempt}": note}, "trace_id": f"trace-{attempt}",
            "tier": None, "sla_due_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=1),
            "attempt": attempt}


async def test_a_later_version_supersedes_keeping_and_merging(books: Books) -> None:
    ticket_id = ticket()
    for attempt, note in ((0, "first"), (0, "redelivered"), (1, "sent back"), (0, "late")):
        async with books.transaction() as ledger:
            await ledger.supersede("escalations", [queued(ticket_id, attempt, note)],
                                   version="attempt", keep=("business_unit", "trace_id"),
                                   merge=("context",), clear=("claimed_by",))
    [row] = await rows(books, "escalations", ticket_id=ticket_id)
    assert (row["attempt"], row["reasons"], row["priority"]) == (1, ["sent back"], 11)
    assert (row["business_unit"], row["trace_id"]) == ("unit-0", "trace-0")
    assert row["context"] == {"attempt_0": "first", "attempt_1": "sent back"}
    assert row["claimed_by"] is None


def test_every_table_key_is_its_unique_constraint() -> None:
    for table, key in TABLE_KEYS.items():
        target = metadata.tables[table]
        unique = [tuple(c.name for c in constraint.columns) for constraint in target.constraints
                  if constraint.__class__.__name__ in ("UniqueConstraint", "PrimaryKeyConstraint")]
        unique += [(c.name,) for c in target.columns if c.unique]
        assert key in unique, (table, key, unique)


CARD = "4111 1111 1111 1111"


async def test_personal_data_stays_out_of_the_audit_and_hand_ons_read_the_original(books: Books) -> None:
    """decisions.inputs / output / reason and accountability.details hold placeholders; the
    draft that names the customer is kept once in decision_originals, which hand-ons read."""
    ticket_id = ticket()
    draft = {"answer": "Hi Jane Doe, your card " + CARD + " is on its way to 12 Acacia Avenue, Leeds."}
    first = records.Decision(ticket_id, "ledger-test", "draft", "test", "1",
                             inputs={"text": f"card {CARD}, mail jane@example.com"}, output=draft,
                             reason="drafted for jane@example.com", trace_id="t")
    event = records.AccountabilityEntry(ticket_id, "e", "test", "draft", "1", {"to": "jane@example.com"})
    for _ in range(2):  # a redelivery stores nothing twice
        async with books.transaction() as ledger:
            recorded = await ledger.record(records.Entries(
                decisions=[first], accountability=[event], handoffs=[hand_on(first.ref)]))
    [stored] = await rows(books, "decisions", ticket_id=ticket_id)
    assert stored["inputs"] == {"text": "card [CARD], mail [EMAIL]"}
    assert stored["output"] == {"answer": "Hi [NAME], your card [CARD] is on its way to [ADDRESS]."}
    assert stored["reason"] == "drafted for [EMAIL]"
    assert [row["details"] for row in await rows(books, "accountability", ticket_id=ticket_id)] == [
        {"to": "[EMAIL]"}]
    assert [row["output"] for row in await rows(books, "decision_originals", ticket_id=ticket_id)] == [draft]
    assert CARD in recorded.publications[0].payload.decode(), "the hand-on is built from the original"
    async with books.reading() as ledger:
        assert await ledger.decided([first.ref]) == {first.ref: draft}


async def test_a_decision_without_personal_data_keeps_no_original(books: Books) -> None:
    ticket_id = ticket()
    async with books.transaction() as ledger:
        await ledger.record(records.Entries(decisions=[decision(ticket_id, {"handler": "kb"})]))
    assert await rows(books, "decision_originals", ticket_id=ticket_id) == []


async def test_an_outcome_is_audited_redacted_and_republished_with_its_answer(books: Books) -> None:
    ticket_id = ticket()
    entry = records.OutcomeEntry("automation", Outcome(
        ticket_id=ticket_id, status=OutcomeStatus.RESOLVED, business_unit="retail",
        answer="Hi Jane Doe, call us back on +44 20 7946 0000.", cost_usd=Decimal("0.5"),
        resolved_by="automation", trace_id="t", decided_at=datetime(2026, 1, 1, tzinfo=UTC)))
    async with books.transaction() as ledger:
        first = await ledger.record(records.Entries(outcomes=[entry]))
    async with books.transaction() as ledger:
        again = await ledger.record(records.Entries(outcomes=[entry]))
    assert first.publications == again.publications
    assert again.outcomes[0].answer == "Hi Jane Doe, call us back on +44 20 7946 0000."
    [stored] = await rows(books, "outcomes", ticket_id=ticket_id)
    assert stored["payload"]["answer"] == "Hi [NAME], call us back on [PHONE]."
    assert len(await rows(books, "outcome_originals", ticket_id=ticket_id)) == 1


async def test_a_dead_letter_keeps_no_personal_data(books: Books) -> None:
    ticket_id, seq = ticket(), int(uuid.uuid4().int % 10**12)
    letter = DeadLetter(stage="ledger-test", subject="s", stream_sequence=seq, deliveries=3,
                        error="boom", ticket_id=ticket_id,
                        payload_excerpt='{"body": "my card ' + CARD + ' was taken"}')
    async with books.transaction() as ledger:
        await ledger.dead_letter(letter)
    [stored] = await rows(books, "dead_letters", ticket_id=ticket_id)
    assert stored["raw_payload"] == '{"body": "my card [CARD] was taken"}'


async def test_each_audited_value_is_searched_for_personal_data_once(
        books: Books, monkeypatch: pytest.MonkeyPatch) -> None:
    """The row written, the original kept and the outcome are built from one redaction of each
    text (the ledger used to search a decision's texts three times and an outcome's twice)."""
    from pinworks_common.personal_data import detect

    assert len(" Thanks." * 520) > detect.CACHED_TEXT_CHARS

    searched: list[str] = []
    real = detect._candidates
    monkeypatch.setattr(detect, "_candidates", lambda t, *a: searched.append(t) or real(t, *a))
    ticket_id = ticket()
    # longer than the detector's cache holds, so only the ledger can spare a second search
    answer = f"Hi Jane Doe, your card {CARD} is on its way ({ticket_id})." + " Thanks." * 520
    draft = records.Decision(ticket_id, "ledger-test", "draft", "test", "1",
                             inputs={"text": f"card {CARD} of {ticket_id}"},
                             output={"answer": answer}, reason=f"drafted for {ticket_id}",
                             trace_id="t")
    entry = records.OutcomeEntry("automation", Outcome(
        ticket_id=ticket_id, status=OutcomeStatus.RESOLVED, business_unit="retail",
        answer=answer + " Outcome.", cost_usd=Decimal("0.5"), resolved_by="automation",
        trace_id="t", decided_at=datetime(2026, 1, 1, tzinfo=UTC)))
    async with books.transaction() as ledger:
        await ledger.record(records.Entries(decisions=[draft], outcomes=[entry]))
    for text in (answer, f"card {CARD} of {ticket_id}", answer + " Outcome."):
        assert searched.count(text) == 1, text
    assert len(await rows(books, "decision_originals", ticket_id=ticket_id)) == 1
    assert len(await rows(books, "outcome_originals", ticket_id=ticket_id)) == 1


async def test_a_platform_trace_id_and_time_are_audited_as_written_the_customer_text_redacted(
        books: Books) -> None:
    """The outcome's trace id and decision time are the platform's own, in fixed formats; the
    detector used to read these two as phone numbers. Anything else under those keys is read."""
    flagged_trace, ticket_id = "ee6359618bb03001307881fe9bdea5a4", ticket()
    decided_at = datetime(2026, 1, 4, 18, 47, 0, 571774, tzinfo=UTC)

    def entry(key: str, trace_id: str) -> records.OutcomeEntry:
        return records.OutcomeEntry(key, Outcome(
            ticket_id=ticket_id, status=OutcomeStatus.RESOLVED, business_unit="retail",
            answer="Hi Jane Doe, call us back on +44 20 7946 0000.", cost_usd=Decimal("0.5"),
            resolved_by="automation", trace_id=trace_id, decided_at=decided_at))

    async with books.transaction() as ledger:
        await ledger.record(records.Entries(outcomes=[
            entry("automation", flagged_trace), entry("forged", "call me on 07700 900123")]))
    stored = {row["outcome_key"]: row["payload"]
              for row in await rows(books, "outcomes", ticket_id=ticket_id)}
    assert stored["automation"]["trace_id"] == flagged_trace
    assert stored["automation"]["decided_at"] == "2026-01-04T18:47:00.571774Z"
    assert stored["automation"]["answer"] == "Hi [NAME], call us back on [PHONE]."
    assert stored["forged"]["trace_id"] == "call me on [PHONE]"
    assert len(await rows(books, "outcome_originals", ticket_id=ticket_id)) == 2


async def test_a_text_repeated_across_a_batch_is_searched_once(
        books: Books, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of one batch repeat the same reasons and drafts; beyond what the detector's own cache
    holds, the ledger reads each distinct text once per batch."""
    from pinworks_common.personal_data import detect

    searched: list[str] = []
    real = detect._candidates
    monkeypatch.setattr(detect, "_candidates", lambda t, *a: searched.append(t) or real(t, *a))
    reason = "drafted for jane@example.com." + " Thanks." * 520
    assert len(reason) > detect.CACHED_TEXT_CHARS
    tickets = [ticket() for _ in range(3)]
    async with books.transaction() as ledger:
        await ledger.record(records.Entries(decisions=[
            records.Decision(ticket_id, "ledger-test", "draft", "test", "1", inputs={},
                             output={"why": reason}, reason=reason, trace_id="t")
            for ticket_id in tickets]))
    assert searched.count(reason) == 1
    for ticket_id in tickets:
        [row] = await rows(books, "decisions", ticket_id=ticket_id)
        assert row["reason"].startswith("drafted for [EMAIL].")
        assert row["output"] == {"why": row["reason"]}
        assert len(await rows(books, "decision_originals", ticket_id=ticket_id)) == 1


async def test_writes_together_with_a_key_not_of_text_come_back_by_key(books: Books) -> None:
    """A key with a number in it (a dead letter's stream sequence) comes back matching the
    row's own key, as the records' text keys do."""
    seq = uuid.uuid4().int % 2**62
    letter = {"stage": "ledger-test", "subject": "s", "stream_seq": seq, "ticket_id": ticket(),
              "deliveries": 3, "error": "boom", "raw_payload": "{}"}
    async with books.transaction() as ledger:
        first = await ledger.store.insert_together([records.Write("dead_letters", [letter])])
    async with books.transaction() as ledger:
        again = await ledger.store.insert_together([records.Write("dead_letters", [letter])])
    assert first == {"dead_letters": [letter]} and again == {"dead_letters": []}


async def test_writes_together_are_addressed_by_table(books: Books) -> None:
    """Each write's inserted rows come back under its table, so a result cannot be read for
    another write's; a table twice in one call, or `after` a write not before it, is refused."""
    ticket_id = ticket()
    row = decision(ticket_id, {"handler": "kb"}).row()
    cost = records.CostEntry(ticket_id, "retail", "classifier", "c", Decimal("0.1")).row()
    original = {"ticket_id": ticket_id, "stage": "ledger-test", "decision_key": "route",
                "output": {"handler": "kb"}}
    async with books.transaction() as ledger:
        first = await ledger.store.insert_together([
            records.Write("cost_ledger", [cost]), records.Write("decisions", [row]),
            records.Write("decision_originals", [original], after="decisions")])
    assert first == {"cost_ledger": [cost], "decisions": [row], "decision_originals": [original]}
    async with books.transaction() as ledger:
        again = await ledger.store.insert_together([
            records.Write("decisions", [row]),
            records.Write("decision_originals", [original], after="decisions")])
    assert again == {"decisions": [], "decision_originals": []}
    for writes in ([records.Write("decisions", [row]), records.Write("decisions", [row])],
                   [records.Write("decision_originals", [original], after="decisions"),
                    records.Write("decisions", [row])]):
        async with books.transaction() as ledger:
            with pytest.raises(ValueError, match="insert_together|before it"):
                await ledger.store.insert_together(writes)
