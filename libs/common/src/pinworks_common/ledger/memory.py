"""An in-memory ledger store with the Postgres store's semantics, for component tests: a
service's stage runs through the real runner and ledger with no database or NATS.

The same test suite runs against both stores (tests/integration/test_ledger.py), so the fake
cannot drift from what Postgres does: natural keys, JSON columns given back as JSON, money to
six decimal places, a transaction that rolls back as a whole.
"""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

from faststream import FastStream
from faststream.nats import NatsBroker
from pydantic import BaseModel

from pinworks_common.db.tables import metadata
from pinworks_common.ledger import jsonb, keys
from pinworks_common.ledger.book import TABLE_KEYS, Ledger, insert_apart, key_of
from pinworks_common.ledger.records import (
    Decision,
    DecisionRef,
    Entries,
    Output,
    Publication,
    Row,
    StoredOutcome,
    Write,
)
from pinworks_common.stage import Delivery, StageRunner
from pinworks_contracts.messages import TicketEnvelope
from pinworks_contracts.subjects import DEAD_LETTER_STREAM, Stage, dead_letter_subject

MONEY_COLUMNS = frozenset({"amount_usd", "cost_usd"})
MICRO_DOLLAR = Decimal("0.000001")


def _stored_row(table: str, row: Row) -> dict[str, Any]:
    """The row as its table keeps it: every column present (absent ones empty), JSON given back
    as JSON, money to six decimal places."""
    stored: dict[str, Any] = dict.fromkeys(metadata.tables[table].columns.keys())
    for name, value in row.items():
        if name in MONEY_COLUMNS and value is not None:
            value = Decimal(value).quantize(MICRO_DOLLAR)
        elif isinstance(value, jsonb.JsonText):  # what the ledger encoded, decoded as Postgres
            value = value.stored()
        elif isinstance(value, dict | list | tuple):
            value = jsonb.as_stored(value)
        stored[name] = value
    return stored


class MemoryStore:
    def __init__(self) -> None:
        self.tables: defaultdict[str, dict[tuple[Any, ...], dict[str, Any]]] = defaultdict(dict)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The stored rows of `table`, in insertion order."""
        return list(self.tables[table].values())

    async def insert_once(self, table: str, rows: Sequence[Row]) -> list[Row]:
        stored, new = self.tables[table], []
        for row in rows:
            if key_of(table, row) not in stored:
                stored[key_of(table, row)] = _stored_row(table, row)
                new.append(row)
        return new

    async def insert_together(self, writes: Sequence[Write]) -> dict[str, list[Row]]:
        return await insert_apart(self, writes)

    async def first_stored(self, table: str, rows: Sequence[Row]) -> list[Row]:
        stored = self.tables[table]
        for row in rows:
            stored.setdefault(key_of(table, row), _stored_row(table, row))
        return [dict(stored[key_of(table, row)]) for row in rows]

    async def supersede(self, table: str, rows: Sequence[Row], *, version: str,
                        keep: Collection[str], merge: Collection[str],
                        clear: Collection[str]) -> None:
        stored, fixed = self.tables[table], {*TABLE_KEYS[table], *keep, *merge}
        for row in rows:
            current = stored.get(key_of(table, row))
            if current is None:
                stored[key_of(table, row)] = _stored_row(table, row)
            elif current[version] < row[version]:
                new = _stored_row(table, row)
                current.update({name: value for name, value in new.items() if name not in fixed})
                current.update({name: {**current[name], **new[name]} for name in merge})
                current.update(dict.fromkeys(clear))

    async def existing(self, table: str, column: str, values: Collection[Any]) -> set[Any]:
        return {row[column] for row in self.tables[table].values() if row[column] in values}

    async def stored_rows(self, table: str, column: str, values: Collection[Any]
                          ) -> list[Row]:
        return [copy.deepcopy(row) for row in self.tables[table].values()
                if row[column] in values]

    async def stored_decisions(self, refs: Collection[DecisionRef]) -> dict[DecisionRef, Output]:
        stored, originals = self.tables["decisions"], self.tables["decision_originals"]
        return {ref: (originals.get(tuple(ref)) or stored[tuple(ref)])["output"]
                for ref in refs if tuple(ref) in stored}

    async def stored_outcomes(self, keys: Collection[tuple[str, str]]
                              ) -> dict[tuple[str, str], StoredOutcome]:
        stored, originals = self.tables["outcomes"], self.tables["outcome_originals"]
        return {key: StoredOutcome((originals.get(key) or stored[key])["payload"],
                                   stored[key]["msg_nonce"])
                for key in keys if key in stored}

    async def cost_totals(self, ticket_ids: Collection[str]) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for row in self.tables["cost_ledger"].values():
            if row["ticket_id"] in ticket_ids:
                totals[row["ticket_id"]] = totals.get(row["ticket_id"], Decimal(0)) + \
                    row["amount_usd"]
        return totals

    async def received_at(self, ticket_ids: Collection[str]) -> dict[str, datetime]:
        return {row["ticket_id"]: row["received_at"] for row in self.tables["tickets"].values()
                if row["ticket_id"] in ticket_ids}


class MemoryBooks:
    """Ledgers over one `MemoryStore`; a transaction that raises leaves the store as it was."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store or MemoryStore()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Ledger]:
        before = copy.deepcopy(self.store.tables)
        try:
            yield Ledger(self.store)
        except BaseException:
            self.store.tables = before
            raise

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Ledger]:
        yield Ledger(self.store)


def upstream_entries(envelope: TicketEnvelope, *, escalated_by: str | None = None
                     ) -> tuple[dict[str, Any], Entries]:
    """What the platform records for an envelope before it reaches a later stage: the accepted
    ticket's row (with its classification) and, for a drafted envelope, the specialist's draft
    decision; `escalated_by` (router, verifier or specialist) adds that stage's decision handing
    the attempt to a person. Component tests record these so a stage trusting only stored state
    (`pinworks_common.provenance`) finds them."""
    ticket, attempt = envelope.ticket, envelope.attempt
    row = {**ticket.model_dump(mode="json"), "submission_seq": 0, "trace_id": envelope.trace_id,
           "received_at": envelope.received_at,
           "intent": envelope.classification.intent if envelope.classification else None,
           "confidence": envelope.classification.confidence if envelope.classification else None,
           "classification": envelope.classification.model_dump(mode="json")
           if envelope.classification else None}
    decisions: list[Decision] = []

    def decided(stage: Stage, key: str, output: dict[str, Any]) -> None:
        decisions.append(Decision(ticket.ticket_id, stage.value, key, stage.value, "test", {},
                                  output, "recorded upstream"))

    if envelope.draft is not None:
        decided(Stage.SPECIALIST, keys.draft(envelope.draft.handler, attempt),
                {"draft": envelope.draft.model_dump(mode="json")})
    if escalated_by == Stage.ROUTER.value:
        decided(Stage.ROUTER, keys.route(attempt), {"handler": "human"})
    elif escalated_by == Stage.VERIFIER.value:
        decided(Stage.VERIFIER, keys.verify(attempt), {"passed": False})
    elif escalated_by == Stage.SPECIALIST.value:
        handler = envelope.route.handler if envelope.route else "template"
        decided(Stage.SPECIALIST, keys.draft(handler, attempt), {"declined": "test", "next": "human"})
    return row, Entries(decisions=decisions)


def record_upstream(books: MemoryBooks, envelope: TicketEnvelope, *,
                    escalated_by: str | None = None) -> None:
    """Record `upstream_entries` of the envelope in `books`."""
    row, entries = upstream_entries(envelope, escalated_by=escalated_by)

    async def record() -> None:
        async with books.transaction() as ledger:
            await ledger.first_stored("tickets", [row])
            await ledger.record(entries)

    asyncio.run(record())


@dataclass
class MemoryMessage:
    """A JetStream message as nats-py hands it to the runner, recording the runner's answer."""

    data: bytes
    seq: int
    num_delivered: int = 1
    subject: str = "pinworks.test"
    headers: dict[str, str] = field(default_factory=dict)
    acked: bool = False
    naked: float | None = None
    in_progress_calls: int = 0

    @property
    def metadata(self) -> Any:
        return SimpleNamespace(sequence=SimpleNamespace(stream=self.seq),
                               num_delivered=self.num_delivered)

    def redelivered(self) -> MemoryMessage:
        """The same message delivered once more (JetStream keeps its stream sequence)."""
        return MemoryMessage(self.data, self.seq, self.num_delivered + 1, self.subject,
                             dict(self.headers))

    async def ack(self) -> None:
        self.acked = True

    async def nak(self, delay: float | None = None) -> None:
        self.naked = delay or 0.0

    async def in_progress(self) -> None:
        self.in_progress_calls += 1


class Published(list[Publication]):
    """A publisher that keeps what it was given, in order."""

    async def __call__(self, publication: Publication) -> None:
        self.append(publication)

    def msg_ids(self) -> list[str]:
        return [publication.msg_id for publication in self]


class StageHarness:
    """A stage under the real runner and ledger, in memory: deliver messages, then see what was
    acknowledged, stored and published. Synchronous, so a service's component tests need
    neither Postgres, NATS nor an async test plugin."""

    def __init__(self, logic: Any, *, max_deliveries: int = 3,
                 on_dead_letter: Callable[[Delivery, str], Sequence[Publication]] | None = None,
                 ) -> None:
        self.books = MemoryBooks()
        self.published = Published()
        self.runner: StageRunner[Any] = StageRunner(
            logic, self.books, self.published, max_deliveries=max_deliveries,
            on_dead_letter=on_dead_letter)
        self._last_seq = 0

    def message(self, payload: bytes | BaseModel, subject: str = "pinworks.test"
                ) -> MemoryMessage:
        """A new message on the stream (the next stream sequence)."""
        self._last_seq += 1
        data = payload if isinstance(payload, bytes) else payload.model_dump_json().encode()
        return MemoryMessage(data, self._last_seq, subject=subject)

    def deliver(self, *messages: MemoryMessage) -> list[Publication]:
        """Hand the messages to the runner as one batch; return what it published."""
        before = len(self.published)
        asyncio.run(self.runner.process(messages))  # type: ignore[arg-type]
        return self.published[before:]

    def record(self, entries: Entries) -> None:
        """Records made before the stage runs (an earlier stage's cost, say)."""
        async def record() -> None:
            async with self.books.transaction() as ledger:
                await ledger.record(entries)

        asyncio.run(record())

    def record_upstream(self, envelope: TicketEnvelope, *, escalated_by: str | None = None
                        ) -> None:
        """What the platform recorded before this stage saw the envelope (`record_upstream`)."""
        record_upstream(self.books, envelope, escalated_by=escalated_by)

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        return [row for row in self.books.store.rows(table)
                if all(row[name] == value for name, value in where.items())]


def without_nonce(msg_id: str) -> str:
    """A message id without an outcome's random nonce (`<ticket>:outcome:<key>`), which tests
    can spell; any other id as it is."""
    return msg_id.rsplit(":", 1)[0] if ":outcome:" in msg_id else msg_id


def sent(publications: Sequence[Publication]) -> list[tuple[str, str, bytes]]:
    """What a downstream consumer would see of each publication: subject, message id and
    payload (trace headers differ by delivery)."""
    return [(p.subject, p.msg_id, p.payload) for p in publications]


@dataclass
class AppRun:
    """What a service's app did with deliveries under FastStream's TestNatsBroker."""

    published: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(subject, Nats-Msg-Id, payload) of each publication, in order."""
    acked: list[str] = field(default_factory=list)
    """The JetStream reply subjects of the deliveries the stage acknowledged."""


def drive_app(broker: NatsBroker, *, subject: str, stream: str, durable: str,
              deliveries: Sequence[tuple[bytes, int, int]],
              outputs: Sequence[tuple[str, str]]) -> AppRun:
    """Deliver (payload, stream sequence, deliveries) on `subject` to the app's subscriber
    under TestNatsBroker (no NATS), capturing what it publishes on `outputs` (subject, stream).

    The stage runner acks nats-py messages itself and reads their JetStream metadata, so each
    delivery carries a JetStream reply subject, and its ack is recorded."""
    from faststream.nats import JStream, NatsMessage, TestNatsBroker
    from faststream.nats.testing import PatchedMessage

    run = AppRun()
    prefix = f"$JS.ACK.{stream}.{durable}."

    async def capture(body: Any, msg: NatsMessage) -> None:
        run.published.append((msg.raw_message.subject, msg.headers["Nats-Msg-Id"], msg.body))

    for output, output_stream in outputs:
        broker.subscriber(output, stream=JStream(output_stream, declare=False))(capture)

    async def ack(message: PatchedMessage) -> None:
        if message.reply.startswith(prefix):
            run.acked.append(message.reply)

    async def deliver() -> None:
        async with TestNatsBroker(broker) as test_broker:
            for payload, seq, delivered in deliveries:
                await test_broker.publish(payload, subject, stream=stream,
                                          reply_to=f"{prefix}{delivered}.{seq}.{seq}.0.0")

    original = PatchedMessage.ack
    PatchedMessage.ack = ack  # type: ignore[method-assign,assignment]
    try:
        asyncio.run(deliver())
    finally:
        PatchedMessage.ack = original  # type: ignore[method-assign]
    return run


UNREACHABLE_SERVERS = {"NATS_URL": "nats://127.0.0.1:1",
                       "DATABASE_URL": "postgresql://test@127.0.0.1:1/none"}
"""Settings under which nothing connects: the component tests' apps never reach NATS or
Postgres."""


def drive_service(create_app: Callable[[Any, MemoryBooks], FastStream],
                  settings_type: Callable[..., Any], books: MemoryBooks, *,
                  subject: str, stream: str, durable: str,
                  deliveries: Sequence[tuple[bytes, int, int]],
                  outputs: Sequence[tuple[str, str]],
                  **settings: Any) -> AppRun:
    """`drive_app` over the service's own composition root: `create_app` with `books` and
    `settings_type` built from `settings` (environment names) and unreachable servers. Dead
    letters are always among the outputs."""
    broker = create_app(settings_type(**UNREACHABLE_SERVERS, **settings), books).broker
    assert broker is not None
    return drive_app(cast(NatsBroker, broker), subject=subject, stream=stream, durable=durable,
                     deliveries=deliveries,
                     outputs=[*outputs, (dead_letter_subject("*"), DEAD_LETTER_STREAM)])
