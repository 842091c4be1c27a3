"""What the platform recorded for a ticket and an automation attempt, so a stage trusts its
stored state rather than the message it was handed.

A holder of a service's NATS identity can publish any internal message: a draft for a ticket
nobody submitted, an escalation for an attempt no stage made. Stages downstream of the
classifier therefore take the ticket, its classification and the draft from the rows the
platform wrote (`tickets`, `decisions`, `escalations`, `dead_letters`) and refuse a message
those rows do not account for: the refusal is audited (`accountability`, keyed
`refused:<stream seq>`), logged and counted, and the message acknowledged, so a forgery never
stalls a consumer and never becomes an outcome or a queue row.

The decision functions (`draft_refusal`, `escalation_refusal`) are pure; `recorded_*` read
the records through a `Ledger`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from pinworks_common.ledger import keys
from pinworks_common.ledger.book import Ledger
from pinworks_common.ledger.records import (
    AccountabilityEntry,
    DecisionRef,
    Entries,
    Output,
    Recorded,
    Row,
)
from pinworks_common.logs import log_fields
from pinworks_common.metrics import after_commit
from pinworks_common.stage import Delivery
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.messages import (
    Classification,
    CustomerState,
    Draft,
    EscalationRequest,
    PinworksTicket,
    TicketEnvelope,
)
from pinworks_contracts.subjects import Stage

log = logging.getLogger("pinworks.provenance")

HUMAN = "human"

REFUSALS = Counter(
    "pinworks_refusals_total",
    "Messages a stage refused because the platform's records do not account for them "
    "(a forged or stale internal message), by stage and kind of refusal.",
    ["stage", "kind"],
)

UNKNOWN_TICKET = "unknown_ticket"
UNKNOWN_ATTEMPT = "unknown_attempt"
UNRECORDED_DRAFT = "unrecorded_draft"
UNRECORDED_ESCALATION = "unrecorded_escalation"


@dataclass(frozen=True)
class Refusal:
    """Why a stage would not act on a message: `kind` is one of the constants above (a
    bounded metric label), `reason` the sentence the audit and the log keep."""

    kind: str
    reason: str


@dataclass(frozen=True)
class TicketRecord:
    """A ticket as the classifier stage recorded it."""

    ticket: PinworksTicket
    classification: Classification | None
    trace_id: str
    platform: str = DEFAULT_PLATFORM
    """The support platform that submitted it (NULL rows from before: `support`)."""


@dataclass(frozen=True)
class QueueRecord:
    """The human queue's row for a ticket: which attempt it holds, and the envelope (with the
    agent's corrected classification once sent back)."""

    attempt: int
    status: str
    envelope: Mapping[str, Any]


def ticket_record(row: Row) -> TicketRecord:
    ticket = PinworksTicket(
        ticket_id=row["ticket_id"], business_unit=row["business_unit"], body=row["body"],
        subject=row["subject"], customer_id=row["customer_id"], channel=row["channel"],
        metadata=dict(row["metadata"] or {}))
    classification = (Classification.model_validate(row["classification"])
                      if row["classification"] else None)
    return TicketRecord(ticket, classification, str(row["trace_id"]),
                        row.get("platform") or DEFAULT_PLATFORM)


async def recorded_tickets(ledger: Ledger, ticket_ids: Iterable[str]) -> dict[str, TicketRecord]:
    """The accepted tickets among `ticket_ids` (one never recorded is absent)."""
    rows = await ledger.stored_rows("tickets", "ticket_id", ticket_ids)
    return {row["ticket_id"]: ticket_record(row) for row in rows}


async def recorded_queue(ledger: Ledger, ticket_ids: Iterable[str]) -> dict[str, QueueRecord]:
    rows = await ledger.stored_rows("escalations", "ticket_id", ticket_ids)
    return {row["ticket_id"]: QueueRecord(int(row["attempt"]), str(row["status"]),
                                          dict(row["context"] or {}).get("envelope") or {})
            for row in rows}


async def dead_lettered_stages(ledger: Ledger, ticket_ids: Iterable[str]
                               ) -> dict[str, set[str]]:
    """The stages that gave up on (dead-lettered) a message of each ticket."""
    found: dict[str, set[str]] = {}
    for row in await ledger.stored_rows("dead_letters", "ticket_id", ticket_ids):
        found.setdefault(str(row["ticket_id"]), set()).add(str(row["stage"]))
    return found


def attempt_refusal(ticket_id: str, attempt: int, queue: QueueRecord | None) -> Refusal | None:
    """Attempt 0 exists for every accepted ticket; attempt n > 0 only once an agent sent the
    ticket back from attempt n - 1 (the queue row then holds n - 1, or n once escalated
    again)."""
    if attempt == 0 or (queue is not None and queue.attempt >= attempt - 1):
        return None
    return Refusal(UNKNOWN_ATTEMPT, f"attempt {attempt} of {ticket_id} was never started "
                                    f"(no agent sent it back; {_held(queue)})")


def queued_refusal(ticket_id: str, attempt: int, queue: QueueRecord | None) -> Refusal | None:
    """Whether the queue holds this attempt of the ticket (what a request about a queued ticket,
    such as agent assist's, must name)."""
    if queue is not None and queue.attempt == attempt:
        return None
    return Refusal(UNRECORDED_ESCALATION,
                   f"attempt {attempt} of {ticket_id} is not queued ({_held(queue)})")


def _held(queue: QueueRecord | None) -> str:
    return "no queue row" if queue is None else f"the queue holds attempt {queue.attempt}"


def recorded_classification(attempt: int, ticket: TicketRecord, queue: QueueRecord | None
                            ) -> Classification | None:
    """Attempt 0 runs on the classifier's recorded reading; a later one on the classification
    the agent corrected, as the queue row keeps it."""
    if attempt > 0 and queue is not None and queue.envelope.get("classification"):
        return Classification.model_validate(queue.envelope["classification"])
    return ticket.classification


def draft_ref(ticket_id: str, handler: str, attempt: int) -> DecisionRef:
    """Where a specialist handler recorded its draft (or decline) for an attempt."""
    return DecisionRef(ticket_id, Stage.SPECIALIST.value, keys.draft(handler, attempt))


def draft_refusal(envelope: TicketEnvelope, ticket: TicketRecord | None,
                  queue: QueueRecord | None, stored: Output | None) -> Refusal | None:
    """Whether the records account for a drafted envelope: its ticket accepted, its attempt
    started and its handler's draft recorded for that attempt."""
    ticket_id = envelope.ticket.ticket_id
    if ticket is None:
        return Refusal(UNKNOWN_TICKET, f"no ticket {ticket_id} was ever accepted")
    refused = attempt_refusal(ticket_id, envelope.attempt, queue)
    if refused is not None:
        return refused
    handler = envelope.draft.handler if envelope.draft else "?"
    if stored is None or "draft" not in stored:
        return Refusal(UNRECORDED_DRAFT, f"no draft by {handler} is recorded for {ticket_id} "
                                         f"attempt {envelope.attempt}")
    return None


def recorded_envelope(envelope: TicketEnvelope, ticket: TicketRecord, queue: QueueRecord | None,
                      stored: Output, customer_state: CustomerState | None) -> TicketEnvelope:
    """The envelope with what the platform recorded in place of what the message claims: the
    accepted ticket, its classification for the attempt, the handler's stored draft
    (entitlements and passages included) and the customer-state reading the classifier stage
    recorded (None without one: never the message's)."""
    return envelope.model_copy(update={
        "ticket": ticket.ticket,
        "platform": ticket.platform,
        "classification": recorded_classification(envelope.attempt, ticket, queue),
        "draft": Draft.model_validate(stored["draft"]),
        "customer_state": customer_state,
    })


def escalation_refs(request: EscalationRequest) -> list[DecisionRef]:
    """The stored decisions that could have handed this request's attempt to a person."""
    envelope = request.envelope
    ticket_id, attempt = envelope.ticket.ticket_id, envelope.attempt
    handlers = ([envelope.route.handler, *envelope.route.fallbacks] if envelope.route else [])
    handlers += [hop.handler for hop in envelope.attempts]
    return [DecisionRef(ticket_id, Stage.ROUTER.value, keys.route(attempt)),
            DecisionRef(ticket_id, Stage.VERIFIER.value, keys.verify(attempt)),
            *(draft_ref(ticket_id, handler, attempt)
              for handler in dict.fromkeys(handlers) if handler != HUMAN)]


def hands_to_person(ref: DecisionRef, output: Output) -> bool:
    """Whether a stored decision sent its ticket to a person (the router chose `human`, the
    last specialist in the chain passed to `human` or declined, the verifier failed it)."""
    if ref.stage == Stage.ROUTER.value:
        return output.get("handler") == HUMAN
    if ref.stage == Stage.VERIFIER.value:
        return output.get("passed") is False
    if ref.stage == Stage.SPECIALIST.value:
        return output.get("next") == HUMAN or ("draft" not in output and "hop" not in output)
    return False


def escalation_refusal(request: EscalationRequest, ticket: TicketRecord | None,
                       queue: QueueRecord | None, stored: Mapping[DecisionRef, Output],
                       dead_lettered: set[str]) -> Refusal | None:
    """Whether a stored automation step produced this escalation: the ticket accepted, the
    attempt started, and a recorded decision of that attempt by the stage that asks handing it
    to a person, or a recorded dead letter of that stage."""
    ticket_id, attempt = request.envelope.ticket.ticket_id, request.envelope.attempt
    if ticket is None:
        return Refusal(UNKNOWN_TICKET, f"no ticket {ticket_id} was ever accepted")
    refused = attempt_refusal(ticket_id, attempt, queue)
    if refused is not None:
        return refused
    if any(hands_to_person(ref, stored[ref]) for ref in escalation_refs(request)
           if ref.stage == request.source_stage and ref in stored):
        return None
    if request.source_stage in dead_lettered:
        return None
    return Refusal(UNRECORDED_ESCALATION,
                   f"no recorded step of attempt {attempt} handed {ticket_id} to a person "
                   f"(claimed by {request.source_stage!r})")


class Refusals:
    """One batch's refused messages: each audited (`accountability`, keyed
    `refused:<stream seq>`), logged now and counted once the batch commits."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.entries: list[AccountabilityEntry] = []

    def refuse(self, ticket_id: str, delivery: Delivery, refusal: Refusal) -> None:
        seq = delivery.stream_seq
        log.warning("%s: refused seq %d for %s: %s", self.stage, seq, ticket_id,
                    refusal.reason, extra=log_fields(ticket_id=ticket_id,
                                                     headers=delivery.headers))
        self.entries.append(AccountabilityEntry(
            ticket_id, keys.refused(seq), self.stage, "refuse", None,
            {"kind": refusal.kind, "reason": refusal.reason, "subject": delivery.subject,
             "stream_seq": seq}))

    def audited(self) -> Entries:
        """The audit entries, each counted in `pinworks_refusals_total` once it commits for the
        first time (a redelivered refusal is already audited and counted)."""
        stage, mine = self.stage, {(entry.ticket_id, entry.key) for entry in self.entries}

        def observe(recorded: Recorded) -> None:
            kinds = [entry.details["kind"] for entry in recorded.new_accountability
                     if (entry.ticket_id, entry.key) in mine]

            def count() -> None:
                for kind in kinds:
                    REFUSALS.labels(stage, kind).inc()
            after_commit(count)

        return Entries(accountability=list(self.entries), observers=[observe] if self.entries else [])
