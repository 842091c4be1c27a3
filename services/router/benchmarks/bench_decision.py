"""Benchmark the router's decision record under the shipped policy: CPU per ticket of the stage
in memory (real runner and ledger, no Postgres or NATS), CPU per decision of redacting and
JSON-encoding its row as the ledger does, and the row's size.

The tickets are the bench's texts (`pinworks bench`), each read as one of the policy's intents
at a confidence spread over 0.30..0.999, in batches of 128 (PINWORKS_BATCH_SIZE's default).

Usage: .venv/bin/python services/router/benchmarks/bench_decision.py [--tickets 2048]

Measured 2026-12-07 on the shared 2-core machine (load average 5-7), the passed-over list
before (one entry per rule) and after (a run of rules leaving out the intent as one entry),
alternated twice: stage in memory 3.10 / 4.22 -> 1.34 / 1.35 CPU-ms per ticket, redact + encode
1.35 / 1.88 -> 0.074 / 0.073 CPU-ms per decision, row 4409 -> 1926 JSON bytes (output 3515 ->
1033). `pinworks bench --private --count 1000 --paced-count 0 --baseline-count 200`, same
alternation: the router process 1.73 / 1.76 -> 1.28 / 1.07 CPU-ms per ticket, the in-process
baseline's route step 0.20 / 0.24 -> 0.05 / 0.06 ms.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from pinworks_common.ledger.book import audit_row
from pinworks_common.ledger.memory import StageHarness
from pinworks_contracts.messages import Classification, IntentScore, TicketEnvelope, TicketSubmission
from pinworks_contracts.subjects import CLASSIFIED
from pinworks_router.policy import Policy, load_policy
from pinworks_router.stage import RouterStage

BATCH = 128


def policy_intents(policy: Policy) -> list[str]:
    """Every intent a rule of the policy names, in the policy's order."""
    seen: dict[str, None] = {}
    for rule in policy.rules:
        seen.update(dict.fromkeys(rule.when.intents or []))
    return list(seen)


def envelope(n: int, intents: list[str]) -> TicketEnvelope:
    from pinworks_cli.bench_texts import text_of

    subject, body = text_of(n)
    ticket = TicketSubmission(ticket_id=f"route-{n}", business_unit="retail", body=body,
                              subject=subject or None)
    intent, confidence = intents[n % len(intents)], 0.30 + 0.699 * ((n * 37) % 100) / 99
    classification = Classification(
        intent=intent, confidence=confidence, out_of_scope=False, model_version="bench",
        alternatives=[IntentScore(intent=intent, score=confidence)])
    return TicketEnvelope(ticket=ticket, classification=classification, trace_id="0" * 32,
                          received_at=datetime.now(UTC))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=2048)
    args = parser.parse_args()
    policy = load_policy()
    intents = policy_intents(policy)
    envelopes = [envelope(n, intents) for n in range(args.tickets)]
    stage = StageHarness(RouterStage(policy))
    stage.deliver(*(stage.message(item, CLASSIFIED) for item in envelopes[:BATCH]))  # warm-up
    stage = StageHarness(RouterStage(policy))
    messages = [stage.message(item, CLASSIFIED) for item in envelopes]
    started = time.process_time()
    for first in range(0, len(messages), BATCH):
        stage.deliver(*messages[first:first + BATCH])
    stage_cpu = time.process_time() - started
    rows = stage.rows("decisions", stage="router")
    assert len(rows) == args.tickets, f"{len(rows)} decisions for {args.tickets} tickets"
    started = time.process_time()
    encoded = [json.dumps(audit_row("decisions", row), default=str)
               for row in rows]
    record_cpu = time.process_time() - started
    output = sum(len(json.dumps(row["output"]).encode()) for row in rows) / len(rows)
    print(f"router  {args.tickets} tickets, policy {policy.version} ({len(policy.rules)} rules): "
          f"stage in memory {stage_cpu * 1000 / args.tickets:.3f} CPU-ms per ticket; "
          f"redact + encode {record_cpu * 1000 / len(rows):.3f} CPU-ms per decision; "
          f"row {sum(len(text.encode()) for text in encoded) / len(rows):.0f} bytes "
          f"(output {output:.0f})")


if __name__ == "__main__":
    main()
