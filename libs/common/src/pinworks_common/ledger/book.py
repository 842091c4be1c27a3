"""The ledger: the one place that records a stage's entries idempotently and says what to
publish from what was stored.

The rule, for every record: insert it keyed by its natural key, ignoring a conflict; a record
this statement did not insert is read back as first stored; a publication is built from the
stored record only. A redelivered batch therefore stores nothing new, charges nothing twice and
republishes the first result under the first message id (JetStream then drops it). Each table is
written by one statement per batch (a batch's records of every table together, see `record`),
and a stored record is read back only when this batch did not just insert it (a decision the
stage already read is not read again).

`Store` is the storage the rule runs on: Postgres (`postgres.PostgresStore`) in the services, an
in-memory copy with the same semantics (`memory.MemoryStore`) for component tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from pinworks_common.ledger import jsonb
from pinworks_common.ledger.records import (
    DecisionRef,
    Entries,
    OutcomeEntry,
    Output,
    Publication,
    Recorded,
    Row,
    StoredOutcome,
    Write,
    new_outcome_nonce,
    outcome_publication,
)
from pinworks_common.ledger.statements import json_columns
from pinworks_common.metrics import observe_costs, observe_decisions, observe_outcomes
from pinworks_common.personal_data import TIMESTAMP, TRACE_ID, Redactor
from pinworks_contracts.messages import DeadLetter, Outcome

R = TypeVar("R")

TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "decisions": ("ticket_id", "stage", "decision_key"),
    "cost_ledger": ("ticket_id", "entry_key"),
    "accountability": ("ticket_id", "event_key"),
    "outcomes": ("ticket_id", "outcome_key"),
    "dead_letters": ("stage", "stream_seq"),
    "rejected_payloads": ("stream_seq",),
    "tickets": ("ticket_id",),
    "escalations": ("ticket_id",),
    "decision_originals": ("ticket_id", "stage", "decision_key"),
    "outcome_originals": ("ticket_id", "outcome_key"),
}
"""The natural key each table is written once by (its unique constraint)."""

KEPT_ORIGINAL = {"decisions": "output", "outcomes": "payload"}
"""The column whose original (before redaction) a table's erasable originals table keeps
(`decision_originals`, `outcome_originals`): a hand-off, or a customer's reply, is built from
it."""


def key_of(table: str, row: Row) -> tuple[Any, ...]:
    return tuple(row[name] for name in TABLE_KEYS[table])


def distinct(table: str, rows: Sequence[Row]) -> list[Row]:
    """Each key once, the first row with it winning, in order."""
    by_key: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        by_key.setdefault(key_of(table, row), row)
    return list(by_key.values())


class Store(Protocol):
    """Keyed storage primitives; `Ledger` holds the rule that combines them."""

    async def insert_once(self, table: str, rows: Sequence[Row]) -> list[Row]:
        """Insert rows whose key is new; return those this call inserted."""

    async def insert_together(self, writes: Sequence[Write]) -> dict[str, list[Row]]:
        """Each write's rows whose key is new (a write `after` another: only the rows whose key
        that one inserted now), in one statement where the store can; return the rows inserted
        by table (each table is written once per call, see `check_writes`)."""

    async def first_stored(self, table: str, rows: Sequence[Row]) -> list[Row]:
        """Insert rows whose key is new; return the stored row for each (distinct-keyed) row."""

    async def supersede(self, table: str, rows: Sequence[Row], *, version: str,
                        keep: Collection[str], merge: Collection[str],
                        clear: Collection[str]) -> None:
        """Insert new keys; replace a stored row only with a higher `version`, keeping the
        `keep` columns, merging the JSON objects of `merge` and emptying `clear`."""

    async def existing(self, table: str, column: str, values: Collection[Any]) -> set[Any]:
        """The values of `column` present in `table`."""

    async def stored_rows(self, table: str, column: str, values: Collection[Any]
                          ) -> list[Row]:
        """The stored rows of `table` whose `column` is one of `values` (every column)."""

    async def stored_decisions(self, refs: Collection[DecisionRef]) -> dict[DecisionRef, Output]:
        """The stored outputs of those of `refs` that are recorded."""

    async def stored_outcomes(self, keys: Collection[tuple[str, str]]
                              ) -> dict[tuple[str, str], StoredOutcome]:
        """Stored outcome payloads (the originals where kept) and message-id nonces by
        (ticket, outcome key)."""

    async def cost_totals(self, ticket_ids: Collection[str]) -> dict[str, Decimal]:
        """Each ticket's recorded cost (tickets without an entry are absent)."""

    async def received_at(self, ticket_ids: Collection[str]) -> dict[str, datetime]:
        """When each accepted ticket was received."""


class Ledger:
    """One batch's view of the records, inside its transaction (or a read outside one)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._decided: dict[DecisionRef, Output] = {}
        self._unread: dict[DecisionRef, _Candidate[Any]] = {}
        """Decisions this ledger stored, each read back from its statement's text only when
        asked for (`decided`): most are never asked for again (no hand-off builds from them)."""
        self._absent: set[DecisionRef] = set()
        self._received: dict[str, datetime] = {}

    async def decided(self, refs: Iterable[DecisionRef]) -> dict[DecisionRef, Output]:
        """The stored output of each recorded decision among `refs` (a stored decision never
        changes, so each is read once per ledger)."""
        wanted = set(refs)
        for ref in wanted & self._unread.keys():
            self._decided[ref] = self._unread.pop(ref).as_stored("output")
        missing = wanted - self._decided.keys() - self._absent
        if missing:
            found = await self.store.stored_decisions(missing)
            self._decided.update(found)
            self._absent |= missing - found.keys()
        return {ref: self._decided[ref] for ref in wanted if ref in self._decided}

    async def undecided(self, work: Sequence[R], ref_of: Callable[[R], DecisionRef]) -> list[R]:
        """The items whose decision is not recorded yet, each ref once (first copy wins)."""
        refs = [ref_of(item) for item in work]
        done = set(await self.decided(refs))
        todo = []
        for item, ref in zip(work, refs, strict=True):
            if ref not in done:
                done.add(ref)
                todo.append(item)
        return todo

    async def costs(self, ticket_ids: Iterable[str]) -> dict[str, Decimal]:
        ids = set(ticket_ids)
        return await self.store.cost_totals(ids) if ids else {}

    async def first_stored(self, table: str, rows: Sequence[Row]) -> dict[tuple[Any, ...], Row]:
        """Store rows with new keys; return the stored row by key (the first one wins)."""
        stored = await self.store.first_stored(table, distinct(table, rows)) if rows else []
        self._remember_received(table, stored)
        return {key_of(table, row): row for row in stored}

    async def insert_once(self, table: str, rows: Sequence[Row]) -> list[Row]:
        """Store rows with new keys; return those stored now."""
        return await self.store.insert_once(table, distinct(table, rows)) if rows else []

    async def existing(self, table: str, column: str, values: Iterable[Any]) -> set[Any]:
        wanted = set(values)
        return await self.store.existing(table, column, wanted) if wanted else set()

    async def stored_rows(self, table: str, column: str, values: Iterable[Any]) -> list[Row]:
        """What the platform recorded in `table` for these `column` values."""
        wanted = set(values)
        rows = await self.store.stored_rows(table, column, wanted) if wanted else []
        self._remember_received(table, rows)
        return rows

    def _remember_received(self, table: str, rows: Sequence[Row]) -> None:
        """When each ticket read was received, for the outcomes' latency (never read twice)."""
        if table == "tickets":
            self._received.update({row["ticket_id"]: row["received_at"] for row in rows
                                   if row.get("received_at") is not None})

    async def supersede(self, table: str, rows: Sequence[Row], *, version: str,
                        keep: Collection[str] = (), merge: Collection[str] = (),
                        clear: Collection[str] = ()) -> None:
        if rows:
            await self.store.supersede(table, rows, version=version, keep=keep, merge=merge,
                                       clear=clear)

    async def record(self, entries: Entries) -> Recorded:
        """Record the entries once and return what to publish, built from the stored records.

        The decisions, charges, events and the stage's own outcomes (each with its erasable
        original where it held personal data) are written in one statement; the outcomes built
        from stored decisions (hand-offs) in a second, when there are any. A record this batch
        did not store is read back only then (a redelivery)."""
        recorded = Recorded(publications=list(entries.publications))
        redactor = Redactor()
        decisions = _candidates("decisions", entries.decisions, lambda d: d.row(), redactor)
        costs = _candidates("cost_ledger", entries.costs, lambda c: c.row(), redactor)
        events = _candidates("accountability", entries.accountability, lambda a: a.row(),
                             redactor)
        direct = _OutcomeRows(entries.outcomes, redactor)
        new = await self.store.insert_together([
            Write("decisions", [candidate.stored for candidate in decisions.values()]),
            Write("decision_originals", _originals("decision_originals", decisions.values(),
                                                   "output"), after="decisions"),
            Write("cost_ledger", [candidate.stored for candidate in costs.values()]),
            Write("accountability", [candidate.stored for candidate in events.values()]),
            *direct.writes()])
        recorded.new_decisions = _records_of("decisions", decisions, new["decisions"])
        recorded.new_costs = _records_of("cost_ledger", costs, new["cost_ledger"])
        recorded.new_accountability = _records_of("accountability", events,
                                                  new["accountability"])
        for row in new["decisions"]:  # as stored: decoded from the text the statement sent
            candidate = decisions[key_of("decisions", row)]
            self._unread[candidate.record.ref] = candidate
        self._absent -= {decision.ref for decision in entries.decisions}  # another delivery's
        outcomes = list(entries.outcomes)
        stored = await self.decided(handoff.after for handoff in entries.handoffs)
        for handoff in entries.handoffs:
            built = handoff.build(stored[handoff.after])
            if isinstance(built, OutcomeEntry):
                outcomes.append(built)
            elif isinstance(built, Publication):
                recorded.publications.append(built)
        handed = _OutcomeRows(outcomes[len(entries.outcomes):], redactor,
                              skip=direct.candidates.keys())
        fresh = direct.fresh(new["outcomes"])
        if handed.rows:
            fresh |= handed.fresh((await self.store.insert_together(handed.writes()))["outcomes"])
        stored_outcomes = await self._stored_outcomes(
            outcomes, fresh, {**direct.candidates, **handed.candidates})
        recorded.outcomes = [outcome for outcome, _ in stored_outcomes]
        recorded.outcome_publications = [
            outcome_publication(outcome, entry.key, nonce, entry.headers)
            for entry, (outcome, nonce) in zip(outcomes, stored_outcomes, strict=True)
        ]
        recorded.publications += recorded.outcome_publications
        _observe(recorded)
        for observer in entries.observers:
            observer(recorded)
        return recorded

    async def dead_letter(self, letter: DeadLetter) -> None:
        await self.store.insert_once("dead_letters", [audit_row("dead_letters", {
            "stage": letter.stage, "subject": letter.subject,
            "stream_seq": letter.stream_sequence, "ticket_id": letter.ticket_id,
            "deliveries": letter.deliveries, "error": letter.error,
            "raw_payload": letter.payload_excerpt,
        })])

    async def _stored_outcomes(self, entries: Sequence[OutcomeEntry],
                               fresh: dict[tuple[str, str], StoredOutcome],
                               candidates: dict[tuple[str, str], Outcome]
                               ) -> list[tuple[Outcome, str | None]]:
        """The stored outcome and nonce of every entry: those stored now as stored, the others
        read back (a redelivery)."""
        await self._observe_outcomes([candidates[key] for key in fresh])
        stored = dict(fresh)
        missing = {(entry.outcome.ticket_id, entry.key) for entry in entries} - stored.keys()
        if missing:
            stored.update(await self.store.stored_outcomes(missing))
        found = [stored[(entry.outcome.ticket_id, entry.key)] for entry in entries]
        return [(Outcome.model_validate(row.payload), row.nonce) for row in found]

    async def _observe_outcomes(self, new: Sequence[Outcome]) -> None:
        """Count new outcomes with the time since acceptance (a rejected submission never was
        accepted, so it has no end-to-end latency)."""
        if not new:
            return
        missing = {outcome.ticket_id for outcome in new} - self._received.keys()
        if missing:
            self._received.update(await self.store.received_at(missing))
        received = self._received
        observe_outcomes([
            (outcome.status.value, outcome.business_unit, outcome.resolved_by,
             (outcome.decided_at - received[outcome.ticket_id]).total_seconds()
             if outcome.ticket_id in received else None)
            for outcome in new
        ])


class _Candidate(NamedTuple, Generic[R]):
    """A record to store: the record, its row, its row as stored (audited columns redacted,
    JSON columns encoded once, `jsonb.JsonText`) and, for each column whose redaction changed
    it, its original value encoded (for its erasable originals table)."""

    record: R
    row: Row
    stored: Row
    originals: dict[str, jsonb.JsonText]

    def as_stored(self, column: str) -> Any:
        """The column's value as stored with the record: its original where redaction changed
        it (as the originals table keeps it), decoded from the text the statement sent."""
        return (self.originals.get(column) or jsonb.encode(self.stored[column])).stored()


def _candidate(table: str, record: R, row: Row, redactor: Redactor) -> _Candidate[R]:
    """The record's row redacted and its JSON columns encoded, each once."""
    stored, changed = _audited(table, row, redactor)
    encoded = dict(stored)
    for name in json_columns(table):
        if name in encoded:
            encoded[name] = jsonb.encode(encoded[name])
    kept = KEPT_ORIGINAL.get(table)
    return _Candidate(record, row, encoded,
                      {kept: jsonb.encode(row[kept])} if kept in changed else {})


def _candidates(table: str, records: Sequence[R], row_of: Callable[[R], Row],
                redactor: Redactor) -> dict[tuple[Any, ...], _Candidate[R]]:
    """Each key's first record with its rows; each row is built, redacted and encoded once."""
    by_key: dict[tuple[Any, ...], _Candidate[R]] = {}
    for record in records:
        row = row_of(record)
        key = key_of(table, row)
        if key not in by_key:
            by_key[key] = _candidate(table, record, row, redactor)
    return by_key


def _records_of(table: str, candidates: dict[tuple[Any, ...], _Candidate[R]],
                inserted: Sequence[Row]) -> list[R]:
    return [candidates[key_of(table, row)].record for row in inserted]


def _originals(table: str, candidates: Iterable[_Candidate[Any]], column: str) -> list[Row]:
    """For each row whose `column` held personal data (its redaction changed it), its original
    value for the erasable `table` (where a hand-off or a customer's reply is built from it)."""
    key = TABLE_KEYS[table]
    return [{**{name: candidate.row[name] for name in key}, column: candidate.originals[column]}
            for candidate in candidates if column in candidate.originals]


class _OutcomeRows:
    """Each (ticket, key) outcome once (the first wins, `skip`ped keys not at all), with a new
    message-id nonce: its row, and its row as stored."""

    def __init__(self, entries: Iterable[OutcomeEntry], redactor: Redactor,
                 skip: Collection[tuple[str, str]] = ()) -> None:
        self.candidates: dict[tuple[str, str], Outcome] = {}
        for entry in entries:
            key = (entry.outcome.ticket_id, entry.key)
            if key not in skip:
                self.candidates.setdefault(key, entry.outcome)
        self.rows: list[Row] = [
            {"ticket_id": ticket_id, "outcome_key": key, "status": outcome.status.value,
             "payload": outcome.model_dump(mode="json"), "msg_nonce": new_outcome_nonce()}
            for (ticket_id, key), outcome in self.candidates.items()]
        self.audited = [_candidate("outcomes", None, row, redactor) for row in self.rows]

    def writes(self) -> list[Write]:
        """The outcomes' write and their originals' after it."""
        return [Write("outcomes", [candidate.stored for candidate in self.audited]),
                Write("outcome_originals", _originals("outcome_originals", self.audited,
                                                      "payload"), after="outcomes")]

    def fresh(self, inserted: Sequence[Row]) -> dict[tuple[str, str], StoredOutcome]:
        """The outcomes stored now, as their rows hold them before redaction."""
        keys = {key_of("outcomes", row) for row in inserted}
        return {(row["ticket_id"], row["outcome_key"]): StoredOutcome(row["payload"],
                                                                      row["msg_nonce"])
                for row in self.rows if key_of("outcomes", row) in keys}


def check_writes(writes: Sequence[Write]) -> None:
    """One `insert_together` call writes each table once, and a write is `after` an earlier one
    (its results are addressed by table)."""
    seen: set[str] = set()
    for write in writes:
        if write.table in seen:
            raise ValueError(f"{write.table} is written twice in one insert_together")
        if write.after is not None and write.after not in seen:
            raise ValueError(f"{write.table} is after {write.after}, which is not written before it")
        seen.add(write.table)


async def insert_apart(store: Store, writes: Sequence[Write]) -> dict[str, list[Row]]:
    """`Store.insert_together` one write after another, for a store that cannot combine them."""
    check_writes(writes)
    inserted: dict[str, list[Row]] = {}
    for write in writes:
        rows = write.rows
        if write.after is not None:
            keys = {key_of(write.after, row) for row in inserted[write.after]}
            rows = [row for row in rows if key_of(write.table, row) in keys]
        inserted[write.table] = await store.insert_once(write.table, rows) if rows else []
    return inserted


AUDITED_TEXT: dict[str, tuple[str, ...]] = {
    "decisions": ("inputs", "output", "reason"),
    "accountability": ("details",),
    "outcomes": ("payload",),
    "dead_letters": ("error", "raw_payload"),
    "rejected_payloads": ("reasons", "raw_payload"),
}
"""The columns of each append-only or audit table that never hold personal data: what is
written to them is redacted first (`pinworks_common.personal_data`)."""

PLATFORM_FORMATTED: dict[str, dict[str, dict[str, re.Pattern[str]]]] = {
    "outcomes": {"payload": {"trace_id": TRACE_ID, "decided_at": TIMESTAMP}},
    "decisions": {"output": {"sla_due_at": TIMESTAMP}},
    "accountability": {"details": {"sla_due_at": TIMESTAMP}},
}
"""Top-level keys of audited JSON columns whose value the platform writes itself, each in its
one format: `Outcome.trace_id` (the stage span's trace id, which `decisions.trace_id` and
`tickets.trace_id` store unredacted), `Outcome.decided_at` (a datetime) and the escalation's
`sla_due_at` (a time it computed). A value wholly of its format is stored unread; any other
value under such a key is redacted as before (`Redactor.json`)."""


COLUMN_COPIES: dict[str, dict[str, dict[str, str]]] = {
    "outcomes": {"payload": {"ticket_id": "ticket_id"}},
}
"""Top-level keys of audited JSON columns whose value copies a column of the same row that is
stored unredacted (not in `AUDITED_TEXT`): `Outcome.ticket_id` repeats `outcomes.ticket_id`.
A value equal to its row's column is stored unread (redacting a copy of a value kept in clear
beside it protects nothing; a bench id such as ``bench-6a8a8ce3-17`` has enough digits for the
phone matcher to read); any other value under such a key is redacted as before."""


def _audited(table: str, row: Row, redactor: Redactor) -> tuple[Row, frozenset[str]]:
    """The row as stored in `table` (its `AUDITED_TEXT` columns redacted) and the columns
    redaction changed."""
    columns = AUDITED_TEXT.get(table, ())
    if not columns:
        return row, frozenset()
    formats = PLATFORM_FORMATTED.get(table, {})
    copies = COLUMN_COPIES.get(table, {})
    stored, changed = dict(row), set()
    for name in columns:
        if name in row:
            clear = {key: row[column] for key, column in copies.get(name, {}).items()
                     if column in row}
            stored[name], redacted = redactor.json(row[name], formats.get(name, {}), clear)
            if redacted:
                changed.add(name)
    return stored, frozenset(changed)


def audit_row(table: str, row: Row) -> dict[str, Any]:
    """The row with personal data in `table`'s audited columns replaced by typed placeholders."""
    return dict(_audited(table, row, Redactor())[0])


def _observe(recorded: Recorded) -> None:
    counts: dict[str, int] = {}
    for decision in recorded.new_decisions:
        counts[decision.stage] = counts.get(decision.stage, 0) + 1
    observe_decisions(counts)
    observe_costs([(c.business_unit, c.component, float(c.amount_usd))
                   for c in recorded.new_costs])


class Books(Protocol):
    """Where ledgers come from: one per transaction, or one to read outside any."""

    def transaction(self) -> AbstractAsyncContextManager[Ledger]:
        """A ledger whose writes commit together when the block ends without an error."""

    def reading(self) -> AbstractAsyncContextManager[Ledger]:
        """A ledger for reads only, holding no transaction open."""
