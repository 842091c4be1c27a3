"""Benchmark agent assist: CPU per escalated ticket of the suggested-reply material (templates
filled from the ticket, help-centre passages) and the size of the decision it records.

The tickets are the bench's texts (`pinworks bench`), each with a classification naming an intent
of the template book and two runners-up, as the classifier hands them on.

Usage: .venv/bin/python services/specialists/benchmarks/bench_assist.py [--tickets 2000]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from pinworks_contracts.messages import Classification, IntentScore, TicketEnvelope, TicketSubmission
from pinworks_specialists.assist import suggest
from pinworks_specialists.kb import KnowledgeBase
from pinworks_specialists.templating import INTENTS, TemplateBook


def envelope(n: int) -> TicketEnvelope:
    from pinworks_cli.bench_texts import text_of

    subject, body = text_of(n)
    intents = [INTENTS[(n + k) % len(INTENTS)] for k in range(3)]
    ticket = TicketSubmission(ticket_id=f"assist-{n}", business_unit="retail", body=body,
                              subject=subject or None,
                              metadata={"customer_name": f"Bench Customer {n}"})
    classification = Classification(
        intent=intents[0], confidence=0.6,
        alternatives=[IntentScore(intent=i, score=s) for i, s in zip(intents, (0.6, 0.2, 0.1),
                                                                       strict=True)],
        out_of_scope=False, model_version="bench")
    return TicketEnvelope(ticket=ticket, classification=classification, trace_id="0" * 32,
                          received_at=datetime.now(UTC))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=2000)
    args = parser.parse_args()
    book, kb = TemplateBook.load(), KnowledgeBase.load()
    envelopes = [envelope(n) for n in range(args.tickets)]
    for item in envelopes[:50]:
        suggest(book, kb, item)
    started = time.process_time()
    outputs = [suggest(book, kb, item) for item in envelopes]
    cpu = time.process_time() - started
    chars = sum(len(json.dumps(output)) for output in outputs)
    print(f"assist  {args.tickets} tickets: {cpu * 1000 / args.tickets:.3f} CPU-ms per ticket, "
          f"decision output {chars / args.tickets:.0f} JSON chars per ticket")


if __name__ == "__main__":
    main()
