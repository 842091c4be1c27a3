"""The classifier stage: accept or reject each submission, classify the accepted in one
micro-batch, and hand the ledger the ticket, decision, cost and outcome records of the batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, cast

from pinworks_classifier.domain import (
    Accepted,
    Intake,
    IntentPrediction,
    Rejected,
    binding_refusal,
    classification_reason,
    first_occurrences,
    text_to_classify,
    to_classification,
)
from pinworks_classifier.metrics import observe_classifications, observe_rejections
from pinworks_common.customer_state import CustomerStateReader, state_reasons
from pinworks_common.ledger import (
    AccountabilityEntry,
    CostEntry,
    Decision,
    Entries,
    Ledger,
    OutcomeEntry,
    Recorded,
    handoff_publication,
    keys,
)
from pinworks_common.ledger.book import audit_row
from pinworks_common.stage import Delivery, Work
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.messages import (
    Classification,
    Outcome,
    PinworksTicket,
    SubmissionError,
    TicketEnvelope,
    TicketSubmission,
    parse_submission,
    pinworks_ticket_id,
    utcnow,
)
from pinworks_contracts.subjects import (
    CLASSIFIED,
    OutcomeStatus,
    Stage,
    classified_message_id,
    submitting_platform,
)

COMPONENT = "classifier"
NO_PLATFORM = "subject: a submission must come on tickets.submitted.<platform>"
FOREIGN_TICKET_ID = "ticket_id: already used by another support platform; choose another id"


class Model(Protocol):
    version: str

    def predict(self, texts: Sequence[str]) -> Sequence[IntentPrediction]: ...


class ClassifierStage:
    stage = Stage.CLASSIFIER.value

    def __init__(self, model: Model, cost_per_ticket: Decimal,
                 customer_state: CustomerStateReader | None = None,
                 platform_units: Mapping[str, Sequence[str]] | None = None) -> None:
        self.model = model
        self.cost_per_ticket = cost_per_ticket
        self.customer_state = customer_state or CustomerStateReader()
        self.platform_units = ({DEFAULT_PLATFORM: ["*"]} if platform_units is None
                               else platform_units)

    def decode(self, delivery: Delivery) -> Intake:
        """A valid submission from a platform bound to its business unit is accepted; anything
        else is rejected with the reasons."""
        try:
            ticket = parse_submission(delivery.data)
        except SubmissionError as error:
            return Rejected(error, len(delivery.data))
        platform = submitting_platform(delivery.subject)
        refusal = (binding_refusal(platform, ticket.business_unit, self.platform_units)
                   if platform is not None else NO_PLATFORM)
        if platform is None or refusal is not None:
            refused = SubmissionError([refusal or NO_PLATFORM], ticket.ticket_id,
                                      ticket.business_unit)
            return Rejected(refused, len(delivery.data))
        return Accepted(PinworksTicket.model_validate({
            **ticket.model_dump(), "ticket_id": pinworks_ticket_id(platform, ticket.ticket_id)}),
            platform)

    async def apply(self, ledger: Ledger, work: Sequence[Work[Intake]]) -> Entries:
        accepted = [item for item in work if isinstance(item.value, Accepted)]
        rejected = [item for item in work if isinstance(item.value, Rejected)]
        entries = await self._accept(ledger, accepted)
        return entries.extend(await self._reject(ledger, rejected))

    async def _accept(self, ledger: Ledger, work: Sequence[Work[Intake]]) -> Entries:
        """Store each new ticket once under pinworks' id of it (its platform's namespace; the
        first submission of an id wins); a later submission of a stored id is recorded as a
        duplicate, never classified, charged or answered."""
        if not work:
            return Entries()
        intakes = [cast(Accepted, item.value) for item in work]
        submissions = [intake.ticket for intake in intakes]
        predictions = self.model.predict([text_to_classify(ticket) for ticket in submissions])
        firsts = first_occurrences([ticket.ticket_id for ticket in submissions])
        now = utcnow()
        stored = await ledger.first_stored("tickets", [
            self._ticket_row(item, intake, prediction, now)
            for item, intake, prediction, first in zip(work, intakes, predictions, firsts,
                                                         strict=True) if first])
        classified: dict[str, tuple[str, Classification]] = {}
        entries = Entries(observers=[lambda recorded: _observe(recorded, classified)])
        foreign: list[tuple[Work[Intake], TicketSubmission]] = []
        for item, intake, prediction in zip(work, intakes, predictions, strict=True):
            ticket = intake.ticket
            row = stored[(ticket.ticket_id,)]
            if row["submission_seq"] != item.delivery.stream_seq:
                if (row["platform"] or DEFAULT_PLATFORM) != intake.platform:
                    foreign.append((item, ticket))
                else:
                    entries.decisions.append(self._duplicate(ticket.ticket_id, item, row))
                continue
            classification = Classification.model_validate(row["classification"])
            classified[ticket.ticket_id] = (ticket.business_unit, classification)
            entries.extend(self._classified(item, ticket, prediction, classification, row))
        return entries.extend(await self._reject_foreign(ledger, foreign))

    async def _reject_foreign(self, ledger: Ledger,
                              work: Sequence[tuple[Work[Intake], TicketSubmission]]) -> Entries:
        """A ticket stored under this id by another support platform: only a ticket stored
        before ids were namespaced (another platform's bare id, as the default platform's are)
        can be one. The submission is rejected (its payload kept, a `rejected` outcome keyed by
        its stream sequence) and the other platform's ticket is left as it is: no duplicate
        decision, no charge."""
        if not work:
            return Entries()
        rejections = [(item, SubmissionError([FOREIGN_TICKET_ID], ticket.ticket_id,
                                             ticket.business_unit)) for item, ticket in work]
        await ledger.insert_once("rejected_payloads", [
            _rejected_payload(item, error, len(item.delivery.data)) for item, error in rejections])
        return Entries(outcomes=[_rejected_outcome(item, error) for item, error in rejections])

    def _ticket_row(self, item: Work[Intake], intake: Accepted,
                    prediction: IntentPrediction, now: datetime) -> dict[str, Any]:
        classification = to_classification(prediction, self.model.version)
        ticket = intake.ticket
        return {
            "ticket_id": ticket.ticket_id, "platform": intake.platform,
            "business_unit": ticket.business_unit,
            "subject": ticket.subject, "body": ticket.body, "customer_id": ticket.customer_id,
            "channel": ticket.channel, "metadata": ticket.metadata,
            "submission_seq": item.delivery.stream_seq, "trace_id": item.trace_id,
            "received_at": now, "intent": classification.intent,
            "confidence": classification.confidence,
            "classification": classification.model_dump(mode="json"),
        }

    def _classified(self, item: Work[Intake], ticket: TicketSubmission,
                    prediction: IntentPrediction, classification: Classification,
                    row: Any) -> Entries:
        """The records of an accepted ticket, and its hand-off to the router built from the
        stored ticket (trace, reception time and classification as first recorded)."""
        seq, trace_id = item.delivery.stream_seq, row["trace_id"]
        state = self.customer_state.read(ticket.subject, ticket.body)
        signals = state_reasons(state)
        envelope = TicketEnvelope(ticket=ticket, platform=row["platform"] or DEFAULT_PLATFORM,
                                  trace_id=trace_id, received_at=row["received_at"],
                                  classification=classification, customer_state=state)
        return Entries(
            decisions=[
                Decision(ticket.ticket_id, self.stage, keys.CLASSIFY, COMPONENT,
                         classification.model_version,
                         inputs={"text": text_to_classify(ticket)[:2000], "stream_seq": seq},
                         output=classification.model_dump(mode="json"),
                         reason=classification_reason(
                             classification, second_stage=prediction.second_stage),
                         cost_usd=self.cost_per_ticket, latency_ms=prediction.cost_ms,
                         trace_id=trace_id),
                Decision(ticket.ticket_id, self.stage, keys.CUSTOMER_STATE, "customer-state",
                         state.version, inputs={"sentiment": state.sentiment},
                         output=state.model_dump(mode="json"),
                         reason="; ".join(signals) if signals else
                         f"customer state: no signal (sentiment {state.sentiment:.2f})",
                         trace_id=trace_id),
            ],
            costs=[CostEntry(ticket.ticket_id, ticket.business_unit, COMPONENT,
                             keys.CLASSIFIER_COST, self.cost_per_ticket)],
            accountability=[AccountabilityEntry(
                ticket.ticket_id, keys.event(COMPONENT, action="classify"), COMPONENT,
                "classify", classification.model_version, {"intent": classification.intent})],
            publications=[handoff_publication(
                envelope, subject=CLASSIFIED, msg_id=classified_message_id(ticket.ticket_id),
                headers=item.trace_headers)],
        )

    def _duplicate(self, ticket_id: str, item: Work[Intake], row: Any) -> Decision:
        seq, first_seq = item.delivery.stream_seq, row["submission_seq"]
        return Decision(
            ticket_id, self.stage, keys.duplicate_submission(seq), COMPONENT, self.model.version,
            inputs={"stream_seq": seq}, output={"duplicate_of_seq": first_seq},
            reason=f"duplicate submission (first received as stream seq {first_seq}); "
            "ignored: no second outcome or charge",
            trace_id=item.trace_id,
        )

    async def _reject(self, ledger: Ledger, work: Sequence[Work[Intake]]) -> Entries:
        """Keep each rejected payload once; a readable id that was never accepted gets a
        `rejected` outcome (an accepted ticket keeps its own)."""
        if not work:
            return Entries()
        errors: list[Rejected] = [item.value for item in work]  # type: ignore[misc]
        errors = [Rejected(_namespaced(item, rejection.error), rejection.payload_bytes)
                  for item, rejection in zip(work, errors, strict=True)]
        inserted = await ledger.insert_once("rejected_payloads", [
            _rejected_payload(item, rejection.error, rejection.payload_bytes)
            for item, rejection in zip(work, errors, strict=True)
        ])
        observe_rejections(len(inserted))
        accepted_ids = await ledger.existing(
            "tickets", "ticket_id", (r.error.ticket_id for r in errors if r.error.ticket_id))
        return Entries(outcomes=[
            _rejected_outcome(item, rejection.error)
            for item, rejection in zip(work, errors, strict=True)
            if rejection.error.ticket_id is not None
            and rejection.error.ticket_id not in accepted_ids])


def _namespaced(item: Work[Intake], error: SubmissionError) -> SubmissionError:
    """The error under pinworks' id of the submitting platform's ticket, so its rejection is
    recorded in that platform's namespace, never on another platform's ticket of the same id."""
    platform = submitting_platform(item.delivery.subject) or DEFAULT_PLATFORM
    if error.ticket_id is None:
        return error
    return SubmissionError(error.reasons, pinworks_ticket_id(platform, error.ticket_id),
                           error.business_unit)


def _rejected_payload(item: Work[Intake], error: SubmissionError, payload_bytes: int
                      ) -> dict[str, Any]:
    return audit_row("rejected_payloads", {
        "stream_seq": item.delivery.stream_seq, "subject": item.delivery.subject,
        "ticket_id": error.ticket_id, "business_unit": error.business_unit,
        "reasons": error.reasons, "raw_payload": item.delivery.excerpt(),
        "payload_bytes": payload_bytes})


def _rejected_outcome(item: Work[Intake], error: SubmissionError) -> OutcomeEntry:
    """The `rejected` outcome of one submission (`error` under pinworks' id of the ticket),
    keyed by its stream sequence, for the platform that submitted it alone."""
    assert error.ticket_id is not None
    platform = submitting_platform(item.delivery.subject) or DEFAULT_PLATFORM
    return OutcomeEntry(keys.rejected_outcome(item.delivery.stream_seq), Outcome(
        ticket_id=error.ticket_id, platform=platform, status=OutcomeStatus.REJECTED,
        business_unit=error.business_unit, reasons=error.reasons, cost_usd=Decimal(0),
        resolved_by="automation", trace_id=item.trace_id, decided_at=utcnow(),
    ), item.trace_headers)


def _observe(recorded: Recorded, classified: dict[str, tuple[str, Classification]]) -> None:
    observe_classifications(classified[decision.ticket_id] for decision in recorded.new_decisions
                            if decision.key == keys.CLASSIFY)
