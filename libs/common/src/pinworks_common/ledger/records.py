"""The typed records a stage hands the ledger, and the publications built from what was stored.

A stage decides; it never writes rows or picks a `Nats-Msg-Id` itself. It returns `Entries`:
decisions, cost entries, accountability events, outcomes and hand-offs. The ledger records
them once (by their natural keys) and builds every publication from the stored record, so a
redelivery republishes the first result under the same message id.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, NamedTuple

from pydantic import BaseModel

from pinworks_common.ledger import keys
from pinworks_common.metrics import AUTOMATION
from pinworks_contracts.messages import (
    EscalationRequest,
    Outcome,
    TicketEnvelope,
    published_outcome,
    utcnow,
)
from pinworks_contracts.subjects import (
    ESCALATION_REQUESTED,
    OUTCOMES_STREAM,
    WORK_STREAM,
    OutcomeStatus,
    escalation_message_id,
    outcome_message_id,
    outcome_subject,
)

Row = Mapping[str, Any]
Output = dict[str, Any]


@dataclass(frozen=True)
class Publication:
    """A message to publish after the transaction commits."""

    subject: str
    payload: bytes
    msg_id: str
    stream: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Write:
    """One table's rows in a write of several tables at once; with `after` (the table of an
    earlier write) only the rows whose key that write inserted now: the erasable original of a
    record is kept only beside the record stored with it, never beside one an earlier delivery
    stored (whose original may have been erased since)."""

    table: str
    rows: Sequence[Row]
    after: str | None = None


class DecisionRef(NamedTuple):
    """Names one decision: a stage decides a ticket once per key."""

    ticket_id: str
    stage: str
    key: str


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
"""Each record class's field names (`dataclasses.fields` builds its tuple anew at every call)."""


def _field_names(kind: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(item.name for item in fields(kind))
    return names


def _row(record: Any, **columns: str) -> dict[str, Any]:
    """A record's table row: one column per field, named as the field unless `columns` renames
    it (every record's `key` is stored under its table's own key column)."""
    return {columns.get(name, name): getattr(record, name)
            for name in _field_names(type(record))}


@dataclass(frozen=True)
class Decision:
    """An audited decision; `output` is what later steps act on, as first stored."""

    ticket_id: str
    stage: str
    key: str
    component: str
    version: str
    inputs: dict[str, Any]
    output: Output
    reason: str
    cost_usd: Decimal = Decimal(0)
    latency_ms: float | None = None
    trace_id: str | None = None

    @property
    def ref(self) -> DecisionRef:
        return DecisionRef(self.ticket_id, self.stage, self.key)

    def row(self) -> dict[str, Any]:
        return _row(self, key="decision_key")


@dataclass(frozen=True)
class CostEntry:
    """A charge to a ticket; `key` makes it count once however often it is recorded."""

    ticket_id: str
    business_unit: str
    component: str
    key: str
    amount_usd: Decimal

    def row(self) -> dict[str, Any]:
        return _row(self, key="entry_key")


@dataclass(frozen=True)
class AccountabilityEntry:
    """Who (which component or person) did what to a ticket."""

    ticket_id: str
    key: str
    actor: str
    action: str
    version: str | None
    details: dict[str, Any]
    actor_type: str = "component"

    def row(self) -> dict[str, Any]:
        return _row(self, key="event_key")


@dataclass(frozen=True)
class OutcomeEntry:
    """A public outcome, stored once per (ticket, key) and published as stored."""

    key: str
    outcome: Outcome
    headers: dict[str, str] = field(default_factory=dict)


HandOffBuilder = Callable[[Output], "Publication | OutcomeEntry | None"]


@dataclass(frozen=True)
class HandOff:
    """What follows a decision, built from the decision's *stored* output (not the one just
    computed, which a redelivery may have computed differently)."""

    after: DecisionRef
    build: HandOffBuilder


@dataclass
class Recorded:
    """What one `Ledger.record` stored for the first time, and what to publish."""

    publications: list[Publication] = field(default_factory=list)
    new_decisions: list[Decision] = field(default_factory=list)
    new_costs: list[CostEntry] = field(default_factory=list)
    new_accountability: list[AccountabilityEntry] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    outcome_publications: list[Publication] = field(default_factory=list)
    """The publication of each of `outcomes`, in the same order (also in `publications`)."""


@dataclass
class Entries:
    """Everything a stage's batch asks the ledger to record and publish."""

    decisions: list[Decision] = field(default_factory=list)
    costs: list[CostEntry] = field(default_factory=list)
    accountability: list[AccountabilityEntry] = field(default_factory=list)
    outcomes: list[OutcomeEntry] = field(default_factory=list)
    handoffs: list[HandOff] = field(default_factory=list)
    publications: list[Publication] = field(default_factory=list)
    observers: list[Callable[[Recorded], None]] = field(default_factory=list)
    """Called with what was newly stored (service metrics count each record once)."""

    def extend(self, other: Entries) -> Entries:
        for name in ("decisions", "costs", "accountability", "outcomes", "handoffs",
                     "publications", "observers"):
            getattr(self, name).extend(getattr(other, name))
        return self


def handoff_publication(message: BaseModel, *, subject: str, msg_id: str,
                        headers: Mapping[str, str], stream: str = WORK_STREAM) -> Publication:
    """A pipeline hand-off; `msg_id` comes from `subjects` (ticket + step)."""
    return Publication(subject, message.model_dump_json().encode(), msg_id, stream,
                       dict(headers))


def escalation_publication(request: EscalationRequest, headers: Mapping[str, str]
                           ) -> Publication:
    """Hand a ticket to the human queue (one request per ticket and automation attempt,
    whichever stage asks)."""
    ticket_id = request.envelope.ticket.ticket_id
    return handoff_publication(request, subject=ESCALATION_REQUESTED, headers=headers,
                               msg_id=escalation_message_id(ticket_id, request.envelope.attempt))


def new_outcome_nonce() -> str:
    """The random part of a new outcome's message id: 128 bits, never derived from the ticket."""
    return secrets.token_urlsafe(16)


class StoredOutcome(NamedTuple):
    """An outcome as its row has it, with the nonce of its message id (None: stored before
    outcomes had one)."""

    payload: Output
    nonce: str | None


def outcome_publication(outcome: Outcome, key: str, nonce: str | None,
                        headers: Mapping[str, str]) -> Publication:
    """The publication of a stored outcome, under the message id its row's nonce makes, for its
    platform alone: under the ticket id that platform submitted (pinworks' own beside it)."""
    return Publication(
        subject=outcome_subject(outcome.status, outcome.platform),
        payload=published_outcome(outcome).model_dump_json().encode(),
        msg_id=outcome_message_id(outcome.ticket_id, key, nonce),
        stream=OUTCOMES_STREAM,
        headers=dict(headers),
    )


def automation_outcome(envelope: TicketEnvelope, status: OutcomeStatus, cost_usd: Decimal,
                       headers: Mapping[str, str], **fields: Any) -> OutcomeEntry:
    """The outcome automation reached for the envelope's attempt (resolved or escalated),
    with the ticket's classification and its cost as the ledger has it."""
    classification = envelope.classification
    return OutcomeEntry(keys.automation_outcome(envelope.attempt), Outcome(
        ticket_id=envelope.ticket.ticket_id,
        platform=envelope.platform,
        status=status,
        business_unit=envelope.ticket.business_unit,
        intent=classification.intent if classification else None,
        confidence=classification.confidence if classification else None,
        cost_usd=cost_usd,
        resolved_by=AUTOMATION,
        trace_id=envelope.trace_id,
        decided_at=utcnow(),
        **fields,
    ), dict(headers))
