"""The classifier stage: accept or reject each submission, classify the accepted in one
micro-batch, and record ticket, decision, cost and outcome rows in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_classifier.domain import (
    Accepted,
    Intake,
    IntentPrediction,
    Rejected,
    classification_reason,
    first_occurrences,
    text_to_classify,
    to_classification,
)
from pinworks_classifier.metrics import observe_classifications, observe_rejections
from pinworks_common.contracts import (
    Classification,
    Outcome,
    SubmissionError,
    TicketEnvelope,
    parse_submission,
    utcnow,
)
from pinworks_common.customer_state import DECISION_KEY as CUSTOMER_STATE_KEY
from pinworks_common.customer_state import CustomerStateReader, state_reasons
from pinworks_common.db.records import (
    outcome_publication,
    record_accountability,
    record_costs,
    record_decisions,
    record_outcomes,
)
from pinworks_common.db.tables import rejected_payloads, tickets
from pinworks_common.stage import Delivery, Publication, Work, envelope_publication
from pinworks_common.subjects import CLASSIFIED, WORK_STREAM, OutcomeStatus, Stage


def _ticket_upsert() -> Any:
    """Insert new tickets; for ids already known, return the stored row unchanged.

    Executed with a list of rows, so SQLAlchemy compiles it once and sends one multi-row
    statement per batch.
    """
    statement = insert(tickets)
    return statement.on_conflict_do_update(
        index_elements=[tickets.c.ticket_id],
        set_={"ticket_id": statement.excluded.ticket_id},
    ).returning(
        tickets.c.ticket_id,
        tickets.c.submission_seq,
        tickets.c.trace_id,
        tickets.c.received_at,
        tickets.c.classification,
        sort_by_parameter_order=True,
    )


TICKET_UPSERT = _ticket_upsert()


class Model(Protocol):
    version: str

    def predict(self, texts: Sequence[str]) -> Sequence[IntentPrediction]: ...


class ClassifierStage:
    stage = Stage.CLASSIFIER.value

    def __init__(self, model: Model, cost_per_ticket: Decimal,
                 customer_state: CustomerStateReader | None = None) -> None:
        self.model = model
        self.cost_per_ticket = cost_per_ticket
        self.customer_state = customer_state or CustomerStateReader()

    def decode(self, delivery: Delivery) -> Intake:
        try:
            return Accepted(parse_submission(delivery.data))
        except SubmissionError as error:
            return Rejected(error, len(delivery.data))

    async def apply(self, conn: AsyncConnection, work: Sequence[Work[Intake]]) -> list[Publication]:
        accepted = [item for item in work if isinstance(item.value, Accepted)]
        rejected = [item for item in work if isinstance(item.value, Rejected)]
        publications = await self._accept(conn, accepted)
        publications += await self._reject(conn, rejected)
        return publications

    async def _accept(
        self, conn: AsyncConnection, work: Sequence[Work[Intake]]
    ) -> list[Publication]:
        if not work:
            return []
        submissions = [item.value.ticket for item in work]  # type: ignore[union-attr]
        predictions = self.model.predict([text_to_classify(ticket) for ticket in submissions])
        firsts = first_occurrences([ticket.ticket_id for ticket in submissions])
        now = utcnow()
        rows = []
        for item, ticket, prediction, first in zip(work, submissions, predictions, firsts,
                                                     strict=True):
            if not first:
                continue
            classification = to_classification(prediction, self.model.version)
            rows.append({
                "ticket_id": ticket.ticket_id,
                "business_unit": ticket.business_unit,
                "subject": ticket.subject,
                "body": ticket.body,
                "customer_id": ticket.customer_id,
                "channel": ticket.channel,
                "metadata": ticket.metadata,
                "submission_seq": item.delivery.stream_seq,
                "trace_id": item.trace_id,
                "received_at": now,
                "intent": classification.intent,
                "confidence": classification.confidence,
                "classification": classification.model_dump(mode="json"),
            })
        stored_rows = await conn.execute(TICKET_UPSERT, rows)
        stored = {row.ticket_id: row for row in stored_rows}

        decisions, costs, accountability, publications = [], [], [], []
        classified: dict[str, tuple[str, Classification]] = {}
        for item, ticket, prediction in zip(work, submissions, predictions, strict=True):
            row = stored[ticket.ticket_id]
            seq = item.delivery.stream_seq
            if row.submission_seq != seq:
                decisions.append(self._duplicate_decision(ticket.ticket_id, seq, row, item))
                continue
            classification = Classification.model_validate(row.classification)
            classified[ticket.ticket_id] = (ticket.business_unit, classification)
            decisions.append({
                "ticket_id": ticket.ticket_id,
                "stage": self.stage,
                "decision_key": "classify",
                "component": "classifier",
                "version": classification.model_version,
                "inputs": {"text": text_to_classify(ticket)[:2000], "stream_seq": seq},
                "output": classification.model_dump(mode="json"),
                "reason": classification_reason(
                    classification, second_stage=prediction.second_stage
                ),
                "cost_usd": self.cost_per_ticket,
                "latency_ms": prediction.cost_ms,
                "trace_id": row.trace_id,
            })
            costs.append({
                "ticket_id": ticket.ticket_id,
                "business_unit": ticket.business_unit,
                "component": "classifier",
                "entry_key": "classifier",
                "amount_usd": self.cost_per_ticket,
            })
            state = self.customer_state.read(ticket.subject, ticket.body)
            signals = state_reasons(state)
            decisions.append({
                "ticket_id": ticket.ticket_id,
                "stage": self.stage,
                "decision_key": CUSTOMER_STATE_KEY,
                "component": "customer-state",
                "version": state.version,
                "inputs": {"sentiment": state.sentiment},
                "output": state.model_dump(mode="json"),
                "reason": "; ".join(signals) if signals else
                f"customer state: no signal (sentiment {state.sentiment:.2f})",
                "cost_usd": Decimal(0),
                "latency_ms": None,
                "trace_id": row.trace_id,
            })
            accountability.append({
                "ticket_id": ticket.ticket_id,
                "event_key": "classifier:classify",
                "actor_type": "component",
                "actor": "classifier",
                "action": "classify",
                "version": classification.model_version,
                "details": {"intent": classification.intent},
            })
            envelope = TicketEnvelope(
                ticket=ticket,
                trace_id=row.trace_id,
                received_at=row.received_at,
                classification=classification,
                customer_state=state,
            )
            publications.append(envelope_publication(
                envelope.model_dump_json().encode(),
                subject=CLASSIFIED,
                stream=WORK_STREAM,
                ticket_id=ticket.ticket_id,
                step="classified",
                headers=item.trace_headers,
            ))
        new = await record_decisions(conn, decisions)
        observe_classifications(classified[row["ticket_id"]] for row in new
                                if row["decision_key"] == "classify")
        await record_costs(conn, costs)
        await record_accountability(conn, accountability)
        return publications

    def _duplicate_decision(
        self, ticket_id: str, seq: int, row: Any, item: Work[Intake]
    ) -> dict[str, Any]:
        return {
            "ticket_id": ticket_id,
            "stage": self.stage,
            "decision_key": f"duplicate:{seq}",
            "component": "classifier",
            "version": self.model.version,
            "inputs": {"stream_seq": seq},
            "output": {"duplicate_of_seq": row.submission_seq},
            "reason": f"duplicate submission (first received as stream seq {row.submission_seq}); "
            "ignored: no second outcome or charge",
            "cost_usd": Decimal(0),
            "latency_ms": None,
            "trace_id": item.trace_id,
        }

    async def _reject(
        self, conn: AsyncConnection, work: Sequence[Work[Intake]]
    ) -> list[Publication]:
        if not work:
            return []
        errors: list[Rejected] = [item.value for item in work]  # type: ignore[misc]
        inserted = await conn.execute(
            insert(rejected_payloads).on_conflict_do_nothing(index_elements=["stream_seq"])
            .returning(rejected_payloads.c.stream_seq),
            [
                {
                    "stream_seq": item.delivery.stream_seq,
                    "subject": item.delivery.subject,
                    "ticket_id": rejection.error.ticket_id,
                    "business_unit": rejection.error.business_unit,
                    "reasons": rejection.error.reasons,
                    "raw_payload": item.delivery.excerpt(),
                    "payload_bytes": rejection.payload_bytes,
                }
                for item, rejection in zip(work, errors, strict=True)
            ],
        )
        observe_rejections(len(inserted.all()))
        readable_ids = {r.error.ticket_id for r in errors if r.error.ticket_id is not None}
        accepted_ids: set[str] = set()
        if readable_ids:
            found = await conn.execute(
                select(tickets.c.ticket_id).where(tickets.c.ticket_id.in_(readable_ids))
            )
            accepted_ids = set(found.scalars())
        candidates = []
        headers_by_key = {}
        for item, rejection in zip(work, errors, strict=True):
            ticket_id = rejection.error.ticket_id
            if ticket_id is None or ticket_id in accepted_ids:
                continue
            key = f"rejected:{item.delivery.stream_seq}"
            candidates.append((key, Outcome(
                ticket_id=ticket_id,
                status=OutcomeStatus.REJECTED,
                business_unit=rejection.error.business_unit,
                reasons=rejection.error.reasons,
                cost_usd=Decimal(0),
                resolved_by="automation",
                trace_id=item.trace_id,
                decided_at=utcnow(),
            )))
            headers_by_key[(ticket_id, key)] = item.trace_headers
        stored = await record_outcomes(conn, candidates)
        return [
            outcome_publication(outcome, key, headers_by_key[(outcome.ticket_id, key)])
            for (key, _), outcome in zip(candidates, stored, strict=True)
        ]
