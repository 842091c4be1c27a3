"""CPU cost of redacting audit rows as the ledger does, per row, by kind of row: µs of this
process's CPU, the median of several rounds, in batches of 32 rows shaped like the stages'
(each with a fresh trace id and time, as in a run). A benchmark to run by hand, not a timed test.

Three ways, to see what each part saves: every string read and a new redactor per row (the
ledger before the platform's fixed-format values were kept unread; it also made two JSON copies
of each decision's output and outcome's payload to tell whether redaction changed them, not
counted here), those values kept unread with a new redactor per row, and (the ledger now) one
redactor per batch.

    .venv/bin/python tools/personal_data/bench_audit.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pinworks_common.ledger import book
from pinworks_common.ledger.records import AccountabilityEntry, Decision
from pinworks_common.personal_data import Redactor
from pinworks_contracts.messages import Outcome
from pinworks_contracts.subjects import OutcomeStatus

BATCH = 32
ANSWER = ("Hi Alex, thanks for getting in touch. Cards usually arrive within 3 to 5 working days "
          "of being ordered. If yours has not arrived after 7 working days, you can order a "
          "replacement in the app under Card > Report a problem.")


def _moment() -> datetime:
    return datetime.now(UTC) + timedelta(microseconds=secrets.randbelow(10**12))


def _outcome(n: int, status: OutcomeStatus) -> dict[str, Any]:
    outcome = Outcome(
        ticket_id=f"bench-{n}", platform="support", status=status, business_unit="retail",
        intent="card_arrival", confidence=0.97,
        handler="template" if status is OutcomeStatus.RESOLVED else "human",
        answer=ANSWER if status is OutcomeStatus.RESOLVED else None,
        reasons=[] if status is OutcomeStatus.RESOLVED else ["the draft makes a promise"],
        cost_usd=Decimal("0.00052"), resolved_by="automation", trace_id=secrets.token_hex(16),
        decided_at=_moment())
    return {"ticket_id": outcome.ticket_id, "outcome_key": "automation",
            "status": status.value, "payload": outcome.model_dump(mode="json"), "msg_nonce": "n"}


def _queued(n: int) -> dict[str, Any]:
    return queue_decision(f"bench-{n}", _moment().isoformat()).row()


def queue_decision(ticket_id: str, due: str) -> Decision:
    """The escalation stage's decision queueing a ticket (also tools/ledger/bench_ledger.py's)."""
    return Decision(
        ticket_id, "escalation", "enqueue:0", "escalation", "1",
        inputs={"source_stage": "verifier", "customer_state": {
            "signals": [], "sentiment": 0.0, "version": "customer-state-3[neg<=-0.8]"},
                "customer_state_recorded": True},
        output={"priority": 50, "priority_because": [], "reasons": ["the draft makes a promise"],
                "tier": None, "sla_due_at": due},
        reason="queued for a person at priority 50: the draft makes a promise",
        trace_id=secrets.token_hex(16))


def _enqueue_event(n: int) -> dict[str, Any]:
    return AccountabilityEntry(f"bench-{n}", "escalation:0:enqueue", "escalation", "enqueue",
                               "1", {"priority": 50, "sla_due_at": _moment().isoformat()}).row()


def _routed(n: int) -> dict[str, Any]:
    """A routing decision: the rules passed over, each with why (the shipped policy has 53)."""
    passed_over = [{"rule": f"error-budget-0.{900 + rule}",
                    "why": f"intent card_arrival not in ['intent_{rule}']"} for rule in range(53)]
    return Decision(
        f"bench-{n}", "router", "route:0", "router", "policy-d0da09f8de46",
        inputs={"intent": "card_arrival", "confidence": 0.995, "business_unit": "retail",
                "channel": None, "customer_metadata": {}},
        output={"handler": "template", "rule": "confident-template",
                "policy_version": "policy-d0da09f8de46", "fallbacks": ["kb", "human"],
                "passed_over": passed_over},
        reason="a known intent read with enough confidence for a template answer",
        trace_id=secrets.token_hex(16)).row()


KINDS: dict[str, tuple[str, Callable[[int], dict[str, Any]]]] = {
    "outcome, resolved (verifier)": ("outcomes", lambda n: _outcome(n, OutcomeStatus.RESOLVED)),
    "outcome, escalated": ("outcomes", lambda n: _outcome(n, OutcomeStatus.ESCALATED)),
    "queue decision (escalation)": ("decisions", _queued),
    "queue event (escalation)": ("accountability", _enqueue_event),
    "routing decision (router)": ("decisions", _routed),
}


def _every_string_read(table: str, row: dict[str, Any], _: Redactor) -> object:
    redactor = Redactor()
    return {name: redactor.json(value) if name in book.AUDITED_TEXT[table] else value
            for name, value in row.items()}


WAYS: dict[str, Callable[[str, dict[str, Any], Redactor], object]] = {
    "all read, per row": _every_string_read,
    "formats kept, per row": lambda table, row, _: book._audited(table, row, Redactor()),
    "formats kept, per batch": book._audited,
}


def per_row(table: str, make: Callable[[int], dict[str, Any]], rounds: int,
            audit: Callable[[str, dict[str, Any], Redactor], object]) -> float:
    """Median over ``rounds`` of the CPU µs per row, each round 8 batches of fresh rows."""
    samples = []
    for _ in range(rounds):
        batches = [[make(n) for n in range(BATCH)] for _ in range(8)]
        started = time.process_time()
        for batch in batches:
            redactor = Redactor()
            for row in batch:
                audit(table, row, redactor)
        samples.append((time.process_time() - started) / (8 * BATCH))
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    for table, make in KINDS.values():
        per_row(table, make, 1, book._audited)  # warm: gazetteers and patterns load once
    print(f"{'row':30} " + " ".join(f"{way:>24}" for way in WAYS)
          + f"  (µs CPU per row, median of {rounds} rounds)")
    for kind, (table, make) in KINDS.items():
        figures = [per_row(table, make, rounds, audit) for audit in WAYS.values()]
        print(f"{kind:30} " + " ".join(f"{figure:24.1f}" for figure in figures))


if __name__ == "__main__":
    main()
