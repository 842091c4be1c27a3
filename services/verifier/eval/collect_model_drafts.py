"""Collect drafts the real local model writes, for labelling by hand.

    .venv/bin/python services/verifier/eval/collect_model_drafts.py [--limit N] [--out PATH]

Starts the local model server `pinworks run` uses (llama-cpp-python over SmolLM2-135M-Instruct)
and sends it, through the real `LlmHandler` (prompt, retrieval, citation gate), tickets from the
BANKING77 *test* split (`common.split_of`): single questions, and pairs of questions of two
different intents in one ticket (where a draft may ignore one). The classification is the
ticket's labelled intent, so what is measured is the draft, not the classifier.

Every reply is kept in `model_drafts.jsonl`: the drafts the handler accepted (what the verifier
sees) and the replies it refused, with the reason. `label_model_drafts.py` joins the accepted
drafts with the hand labels in `model_draft_labels.json` into the labelled set the evaluation
reads. Temperature 0, so a rerun with the same model and prompt writes the same drafts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EVAL_DIR, SECURITY_INTENTS, banking77  # noqa: E402

from pinworks_cli.localmodel import LocalModelConfig, LocalModelServer  # noqa: E402
from pinworks_contracts.messages import (  # noqa: E402
    Classification,
    Draft,
    RouteDecision,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_specialists.kb import KnowledgeBase  # noqa: E402
from pinworks_specialists.knowledge import ticket_query  # noqa: E402
from pinworks_specialists.llm import (  # noqa: E402
    PROMPT_VERSION,
    LlmHandler,
    check_citations,
    strip_citations,
)
from pinworks_specialists.settings import Price, SpecialistSettings  # noqa: E402

SEED = 20261202
OUT = EVAL_DIR / "model_drafts.jsonl"


def pick_tickets(singles: int, pairs: int) -> list[dict[str, Any]]:
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent, split in banking77():
        if split == "test" and intent not in SECURITY_INTENTS:
            by_intent[intent].append(text)
    rng = random.Random(SEED)
    intents = sorted(by_intent)
    tickets: list[dict[str, Any]] = []
    for n in range(singles):
        intent = intents[(n * len(intents)) // max(singles, 1) % len(intents)]
        text = rng.choice(by_intent[intent])
        tickets.append({"id": f"single-{n:03d}", "shape": "single", "intents": [intent],
                        "body": text.strip()})
    for n in range(pairs):
        first, second = rng.sample(intents, 2)
        a, b = rng.choice(by_intent[first]).strip(), rng.choice(by_intent[second]).strip()
        joiner = rng.choice([" Also, ", " And another thing: ", "\n\nSecond question: "])
        tickets.append({"id": f"pair-{n:03d}", "shape": "pair", "intents": [first, second],
                        "body": f"{a}{joiner}{b[0].lower()}{b[1:]}"})
    return tickets


def envelope_for(ticket: dict[str, Any]) -> TicketEnvelope:
    return TicketEnvelope(
        ticket=TicketSubmission(ticket_id=f"eval-{ticket['id']}", business_unit="retail",
                                body=ticket["body"]),
        trace_id="0" * 32, received_at=datetime(2026, 12, 2, tzinfo=UTC),
        classification=Classification(intent=ticket["intents"][0], confidence=0.4,
                                      alternatives=[], out_of_scope=False,
                                      model_version="banking77-label"),
        route=RouteDecision(handler="llm_small", rule="plausible-to-model", reason="eval",
                            policy_version="eval", fallbacks=["llm_frontier", "kb", "human"]),
    )


def ungated_draft(handler: LlmHandler, env: TicketEnvelope, details: dict[str, Any]
                  ) -> Draft | None:
    """The draft a refused reply would have been without the handler's citation gate (its
    citations of given passages kept, invented ones dropped): what the verifier alone would
    face."""
    answer = details.get("answer")
    if not answer:
        return None
    ticket = env.ticket
    given = {p.passage_id: p.text for p in
             handler.kb.search(ticket_query(ticket.subject, ticket.body), k=handler.endpoint.passages)}
    check = check_citations(answer, list(given))
    return Draft(handler=handler.name, handler_version=handler.version,
                 answer=strip_citations(answer), cost_usd=Decimal(0), citations=check.cited,
                 details={"answer_with_citations": answer, "gate": "refused",
                          "passages": [{"passage_id": pid, "text": given[pid]}
                                       for pid in check.cited]})


async def collect(base_url: str, model: str, tickets: list[dict[str, Any]], out: Path,
                  max_tokens: int) -> None:
    settings = SpecialistSettings(LLM_SMALL_BASE_URL=base_url, LLM_SMALL_MODEL=model,
                                  LLM_TEMPERATURE=0, LLM_MAX_TOKENS=max_tokens,
                                  LLM_SMALL_TIMEOUT_SECONDS=120, LLM_DEADLINE_SECONDS=300)
    handler = LlmHandler(settings.llm_endpoint("llm_small"), KnowledgeBase.load(), Price())
    try:
        with out.open("w", encoding="utf-8") as handle:
            for n, ticket in enumerate(tickets, start=1):
                env = envelope_for(ticket)
                started = time.perf_counter()
                result = await handler.handle(env)
                seconds = time.perf_counter() - started
                record: dict[str, Any] = {**ticket, "seconds": round(seconds, 3),
                                          "model": model, "prompt_version": PROMPT_VERSION}
                if isinstance(result, Draft):
                    drafted = env.model_copy(update={"draft": result})
                    record.update(accepted=True, envelope=drafted.model_dump(mode="json"))
                else:
                    record.update(accepted=False, declined=result.reason, kind=result.kind,
                                  details=result.details)
                    ungated = ungated_draft(handler, env, result.details)
                    if ungated is not None:
                        drafted = env.model_copy(update={"draft": ungated})
                        record["envelope"] = drafted.model_dump(mode="json")
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                handle.flush()
                state = "draft" if record["accepted"] else f"declined: {record['declined'][:60]}"
                print(f"{n}/{len(tickets)} {ticket['id']} {seconds:.1f}s {state}", flush=True)
    finally:
        await handler.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--singles", type=int, default=90)
    parser.add_argument("--pairs", type=int, default=45)
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--base-url", help="an already running server (else one is started)")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    tickets = pick_tickets(args.singles, args.pairs)
    if args.base_url:
        asyncio.run(collect(args.base_url, args.model or "local", tickets, args.out,
                            args.max_tokens))
        return 0
    with tempfile.TemporaryDirectory() as logs:
        server = LocalModelServer(LocalModelConfig.from_env(), Path(logs),
                                  prefer_default_port=False)
        server.start()
        try:
            server.wait_ready(120)
            asyncio.run(collect(server.base_url, server.model_name, tickets, args.out,
                                args.max_tokens))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
