"""The ledger: the one place that records a stage's entries idempotently and says what to
publish from what was stored.

The rule, for every record: insert it keyed by its natural key, ignoring a conflict; a record
this statement did not insert is read back as first stored; a publication is built from the
stored record only. A redelivered batch therefore stores nothing new, charges nothing twice and
republishes the first result under the first message id (JetStream then drops it). Each table is
written with one multi-row statement per batch, and a stored record is read back only when this
batch did not just insert it (a decision the stage already read is not read again).

`Store` is the storage the rule runs on: Postgres (`postgres.PostgresStore`) in the services, an
in-memory copy with the same semantics (`memory.MemoryStore`) for component tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from pinworks_common.ledger.records import (
    DecisionRef,
    Entries,
    OutcomeEntry,
    Output,
    Publication,
    Recorded,
    Row,
    StoredOutcome,
    new_outcome_nonce,
    outcome_publication,
)
from pinworks_common.metrics import observe_costs, observe_decisions, observe_outcomes
from pinworks_common.personal_data import redact_value
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


def key_of(table: str, row: Row) -> tuple[Any, ...]:
    return tuple(row[name] for name in TABLE_KEYS[table])


def distinct(table: str, rows: Sequence[Row]) -> list[Row]:
    """Each key once, the first row with it winning, in order."""
    by_key: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        by_key.setdefault(key_of(table, row), row)
    return list(by_key.values())


def as_stored(value: Any) -> Any:
    """A JSON value as a JSON column gives it back (tuples become lists, and so on)."""
    return json.loads(json.dumps(value))


class Store(Protocol):
    """Keyed storage primitives; `Ledger` holds the rule that combines them."""

    async def insert_once(self, table: str, rows: Sequence[Row]) -> list[Row]:
        """Insert rows whose key is new; return those this call inserted."""

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
        self._absent: set[DecisionRef] = set()

    async def decided(self, refs: Iterable[DecisionRef]) -> dict[DecisionRef, Output]:
        """The stored output of each recorded decision among `refs` (a stored decision never
        changes, so each is read once per ledger)."""
        wanted = set(refs)
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
        return await self.store.stored_rows(table, column, wanted) if wanted else []

    async def supersede(self, table: str, rows: Sequence[Row], *, version: str,
                        keep: Collection[str] = (), merge: Collection[str] = (),
                        clear: Collection[str] = ()) -> None:
        if rows:
            await self.store.supersede(table, rows, version=version, keep=keep, merge=merge,
                                       clear=clear)

    async def record(self, entries: Entries) -> Recorded:
        """Record the entries once and return what to publish, built from the stored records."""
        recorded = Recorded(publications=list(entries.publications))
        new_decisions = await self._insert_new("decisions", entries.decisions,
                                               lambda d: d.row(), AUDITED_TEXT["decisions"])
        recorded.new_decisions = [decision for decision, _, _ in new_decisions]
        await self._keep_originals("decision_originals", [
            (row, audited, "output") for _, row, audited in new_decisions])
        for decision in recorded.new_decisions:
            self._decided[decision.ref] = as_stored(decision.output)
        self._absent -= {decision.ref for decision in entries.decisions}  # another delivery's
        recorded.new_costs = [cost for cost, _, _ in await self._insert_new(
            "cost_ledger", entries.costs, lambda c: c.row())]
        recorded.new_accountability = [event for event, _, _ in await self._insert_new(
            "accountability", entries.accountability, lambda a: a.row(),
            AUDITED_TEXT["accountability"])]
        outcomes = list(entries.outcomes)
        stored = await self.decided(handoff.after for handoff in entries.handoffs)
        for handoff in entries.handoffs:
            built = handoff.build(stored[handoff.after])
            if isinstance(built, OutcomeEntry):
                outcomes.append(built)
            elif isinstance(built, Publication):
                recorded.publications.append(built)
        stored_outcomes = await self._record_outcomes(outcomes)
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
        await self.store.insert_once("dead_letters", [audit_row({
            "stage": letter.stage, "subject": letter.subject,
            "stream_seq": letter.stream_sequence, "ticket_id": letter.ticket_id,
            "deliveries": letter.deliveries, "error": letter.error,
            "raw_payload": letter.payload_excerpt,
        }, AUDITED_TEXT["dead_letters"])])

    async def _keep_originals(self, table: str, rows: Sequence[tuple[Row, Row, str]]) -> None:
        """For each newly stored audit row whose `column` held personal data (its redacted copy
        differs from it), the original value in the erasable `table` (where a hand-off or a
        customer's reply is built from it)."""
        key = TABLE_KEYS[table]
        originals = [{**{name: row[name] for name in key}, column: row[column]}
                     for row, audited, column in rows
                     if _holds_personal_data(row[column], audited[column])]
        if originals:
            await self.store.insert_once(table, originals)

    async def _insert_new(self, table: str, records: Sequence[R], row_of: Callable[[R], Row],
                          audited: Collection[str] = ()) -> list[tuple[R, Row, Row]]:
        """Insert the records (each key once, their `audited` columns redacted) and return
        those stored for the first time, each with its row and its row as stored; each row is
        built and redacted once."""
        by_key: dict[tuple[Any, ...], tuple[R, Row, Row]] = {}
        for record in records:
            row = row_of(record)
            key = key_of(table, row)
            if key not in by_key:
                by_key[key] = (record, row, audit_row(row, audited) if audited else row)
        if not by_key:
            return []
        new = await self.store.insert_once(table, [stored for _, _, stored in by_key.values()])
        return [by_key[key_of(table, row)] for row in new]

    async def _record_outcomes(self, entries: Sequence[OutcomeEntry]
                               ) -> list[tuple[Outcome, str | None]]:
        """Store each (ticket, key) outcome once, with a new message-id nonce; return the stored
        outcome and nonce for every entry."""
        if not entries:
            return []
        candidates: dict[tuple[str, str], Outcome] = {}
        for entry in entries:
            candidates.setdefault((entry.outcome.ticket_id, entry.key), entry.outcome)
        rows: list[dict[str, Any]] = [
            {"ticket_id": ticket_id, "outcome_key": key, "status": outcome.status.value,
             "payload": outcome.model_dump(mode="json"), "msg_nonce": new_outcome_nonce()}
            for (ticket_id, key), outcome in candidates.items()]
        audited = [audit_row(row, AUDITED_TEXT["outcomes"]) for row in rows]
        new = await self.store.insert_once("outcomes", audited)
        inserted = {key_of("outcomes", row) for row in new}
        fresh = [(row, stored) for row, stored in zip(rows, audited, strict=True)
                 if key_of("outcomes", row) in inserted]
        await self._keep_originals("outcome_originals",
                                   [(row, stored, "payload") for row, stored in fresh])
        fresh_rows = [row for row, _ in fresh]
        stored = {key_of("outcomes", row): StoredOutcome(row["payload"], row["msg_nonce"])
                  for row in fresh_rows}
        await self._observe_outcomes([candidates[key] for key in stored])
        missing = candidates.keys() - stored.keys()
        if missing:
            stored.update(await self.store.stored_outcomes(missing))
        found = [stored[(e.outcome.ticket_id, e.key)] for e in entries]
        return [(Outcome.model_validate(as_stored(row.payload)), row.nonce) for row in found]

    async def _observe_outcomes(self, new: Sequence[Outcome]) -> None:
        """Count new outcomes with the time since acceptance (a rejected submission never was
        accepted, so it has no end-to-end latency)."""
        if not new:
            return
        received = await self.store.received_at({outcome.ticket_id for outcome in new})
        observe_outcomes([
            (outcome.status.value, outcome.business_unit, outcome.resolved_by,
             (outcome.decided_at - received[outcome.ticket_id]).total_seconds()
             if outcome.ticket_id in received else None)
            for outcome in new
        ])


AUDITED_TEXT: dict[str, tuple[str, ...]] = {
    "decisions": ("inputs", "output", "reason"),
    "accountability": ("details",),
    "outcomes": ("payload",),
    "dead_letters": ("error", "raw_payload"),
    "rejected_payloads": ("reasons", "raw_payload"),
}
"""The columns of each append-only or audit table that never hold personal data: what is
written to them is redacted first (`pinworks_common.personal_data`)."""


def _holds_personal_data(value: Any, redacted: Any) -> bool:
    """Whether redacting `value` changed it, from its redacted copy (`audit_row`'s), so the
    text is not searched twice."""
    return bool(as_stored(redacted) != as_stored(value))


def audit_row(row: Row, columns: Collection[str]) -> dict[str, Any]:
    """The row with personal data in `columns` replaced by typed placeholders."""
    return {name: redact_value(value) if name in columns else value for name, value in row.items()}


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
