"""Benchmark the escalation stage's provenance check: CPU per request of deciding, for a batch
of escalation requests, which a stored step accounts for (`provenance.escalation_refusal` over
the batch's stored decisions, as `EscalationStage` asks it), by batch size.

Usage: .venv/bin/python services/escalation/benchmarks/bench_provenance.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from pinworks_common import provenance
from pinworks_common.customer_state import state_ref
from pinworks_common.ledger import DecisionRef
from pinworks_contracts.messages import (
    Classification,
    EscalationRequest,
    PinworksTicket,
    RouteDecision,
    TicketEnvelope,
)

SIZES = (1, 10, 32, 128)
"""Batch sizes: 128 is the stage's largest (PINWORKS_BATCH_SIZE)."""


def batch(size: int) -> tuple[list[EscalationRequest], dict[DecisionRef, dict[str, object]],
                              dict[str, provenance.TicketRecord]]:
    """`size` tickets the router sent to a person, with what the stage reads for them: the
    route, verifier and draft decisions (the router's stored) and the customer-state readings."""
    requests: list[EscalationRequest] = []
    stored: dict[DecisionRef, dict[str, object]] = {}
    records: dict[str, provenance.TicketRecord] = {}
    for n in range(size):
        ticket = PinworksTicket(ticket_id=f"B-{n}", business_unit="retail", body="text")
        classification = Classification(intent="card_arrival", confidence=0.6, alternatives=[],
                                        out_of_scope=False, model_version="m")
        envelope = TicketEnvelope(
            ticket=ticket, trace_id="0" * 32, received_at=datetime.now(UTC),
            classification=classification,
            route=RouteDecision(handler="human", rule="gate", reason="r", policy_version="v",
                                fallbacks=[]))
        request = EscalationRequest(envelope=envelope, source_stage="router", reasons=["gate"])
        requests.append(request)
        for ref in provenance.escalation_refs(request)[:1]:
            stored[ref] = {"handler": "human"}
        stored[state_ref(ticket.ticket_id)] = {"signals": []}
        records[ticket.ticket_id] = provenance.TicketRecord(ticket, classification, "0" * 32)
    return requests, stored, records


def check_all(requests: list[EscalationRequest], stored: dict[DecisionRef, dict[str, object]],
              records: dict[str, provenance.TicketRecord]) -> None:
    for request in requests:
        ticket_id = request.envelope.ticket.ticket_id
        assert provenance.escalation_refusal(
            request, records[ticket_id], None, stored, set()) is None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    for size in SIZES:
        requests, stored, records = batch(size)
        check_all(requests, stored, records)  # warm
        started = time.process_time()
        for _ in range(args.rounds):
            check_all(requests, stored, records)
        per_request = (time.process_time() - started) / (args.rounds * size)
        print(f"batch of {size:3d}: {per_request * 1e6:8.1f} CPU-us per request")


if __name__ == "__main__":
    main()
