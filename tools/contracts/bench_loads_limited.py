"""CPU of `loads_limited` per message (#20): the decoding every stage does of each envelope it
reads, on payloads shaped like the ones stages send each other (pydantic's JSON of a
`TicketEnvelope` at the verifier; one that three specialists passed down, with more than 32
brackets, whose nesting is counted before decoding; the first wrapped in an `EscalationRequest`
at the escalation) and a submission at the door. Best of several timeit repeats, in µs. A
benchmark to run by hand, not a timed test.

    .venv/bin/python tools/contracts/bench_loads_limited.py [--number 2000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import timeit
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path

from pinworks_contracts import messages
from pinworks_contracts.jsonlimits import (
    INTERNAL_LIMITS,
    SUBMISSION_LIMITS,
    JsonLimits,
    loads_limited,
)

ANSWER = ("Hi Alex, thanks for getting in touch. Cards usually arrive within 3 to 5 working days "
          "of being ordered. If yours has not arrived after 7 working days, you can order a "
          "replacement in the app under Card > Report a problem.")
BODY = ("Hello, I ordered a new debit card two weeks ago and it still has not arrived. Could you "
        "tell me when it will come? I need it for a trip next month. Thanks, Alex")


def envelope() -> messages.TicketEnvelope:
    """A ticket as the verifier reads it: classified, routed, drafted."""
    return messages.TicketEnvelope(
        ticket=messages.TicketSubmission(
            ticket_id="bench-6a8a8ce3-17", business_unit="retail", body=BODY,
            metadata={"synthetic": True, "channel": "email", "customer_tier": "standard"}),
        trace_id="ee6359618bb03001307881fe9bdea5a4",
        received_at=datetime(2026, 12, 7, 9, 15, 0, 412, tzinfo=UTC),
        classification=messages.Classification(
            intent="card_arrival", confidence=0.995, out_of_scope=False, model_version="m-3",
            alternatives=[{"intent": "card_not_working", "score": 0.003},
                          {"intent": "lost_or_stolen_card", "score": 0.001}]),
        route=messages.RouteDecision(
            handler="template", rule="confident-template", reason="rule confident-template",
            policy_version="policy-d0da09f8de46", fallbacks=["kb", "llm_small", "human"]),
        draft=messages.Draft(
            handler="template", handler_version="templates-5c1e", answer=ANSWER,
            cost_usd=Decimal("0.00052"), required_terms=["working days", "replacement"],
            details={"template": "card_arrival", "slots": {"days": 5}, "score": 0.91}))


def payloads() -> dict[str, tuple[bytes, JsonLimits]]:
    ticket = envelope()
    escalation = messages.EscalationRequest(envelope=ticket, source_stage="verifier",
                                            reasons=["the draft makes a promise"])
    attempts = [messages.HandlerAttempt(handler=handler, handler_version="3", result="declined",
                                        reason=f"{handler} found no answer [score 0.2]")
                for handler in ("template", "kb", "llm_small")]
    route, draft = ticket.route, ticket.draft
    assert route is not None and draft is not None, "envelope() is a drafted ticket"
    retried = ticket.model_copy(update={
        "attempts": attempts, "route": route.model_copy(update={"reason": "[a] [b]"}),
        "draft": draft.model_copy(update={"citations": ["kb-1", "kb-7"], "details": {
            "passages": [{"id": f"kb-{n}", "score": 0.5} for n in range(12)]}})})
    return {
        "envelope": (ticket.model_dump_json().encode(), INTERNAL_LIMITS),
        "retried": (retried.model_dump_json().encode(), INTERNAL_LIMITS),
        "escalation": (escalation.model_dump_json().encode(), INTERNAL_LIMITS),
        "submission": (ticket.ticket.model_dump_json().encode(), SUBMISSION_LIMITS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"{'payload':12} {'bytes':>6} {'µs per call':>12}  (best of {args.repeat} x "
          f"{args.number}; load average {load})")
    for name, (payload, limits) in payloads().items():
        best = min(timeit.repeat(partial(loads_limited, payload, limits), number=args.number,
                                 repeat=args.repeat))
        print(f"{name:12} {len(payload):6} {best * 1e6 / args.number:12.1f}")

if __name__ == "__main__":
    main()
