"""Groundedness: every sentence of a `kb` or `llm` draft is supported by the passages it cites."""

from __future__ import annotations

from typing import Any

from pinworks_contracts.messages import TicketEnvelope
from pinworks_verifier.result import CheckResult
from pinworks_verifier.text import body_paragraphs, content_words, numbers, sentences


class GroundednessCheck:
    """A sentence is supported when enough of its content words, and every number it states,
    appear in one cited passage (or two adjacent ones). Short courtesy sentences ("I'm sorry to
    hear that.") carry no claim and are skipped. Handlers that answer from reviewed templates
    are not checked."""

    name = "groundedness"
    version = "groundedness-1"

    def __init__(self, handlers: frozenset[str] = frozenset({"kb", "llm"}),
                 min_support: float = 0.6, min_claim_words: int = 3) -> None:
        self.handlers = handlers
        self.min_support = min_support
        self.min_claim_words = min_claim_words

    def applies(self, handler: str) -> bool:
        return handler in self.handlers or any(handler.startswith(f"{h}_") for h in self.handlers)

    def run(self, envelope: TicketEnvelope) -> CheckResult:
        draft = envelope.draft
        if draft is None or not self.applies(draft.handler):
            return CheckResult(self.name, self.version, True, (), {"applies": False})
        passages = {
            str(p.get("passage_id")): str(p.get("text", ""))
            for p in draft.details.get("passages", []) if isinstance(p, dict)
        }
        reasons: list[str] = []
        missing = [c for c in draft.citations if c not in passages]
        if not draft.citations:
            reasons.append("groundedness: the draft cites no passages")
        if missing:
            reasons.append(f"groundedness: cited passage(s) without text: {', '.join(missing)}")
        cited = [passages[c] for c in draft.citations if c in passages]
        evidence = [(content_words(t), numbers(t)) for t in cited]
        evidence += [(a[0] | b[0], a[1] | b[1]) for a, b in zip(evidence, evidence[1:], strict=False)]
        unsupported: list[dict[str, Any]] = []
        checked = 0
        for sentence in (s for p in body_paragraphs(draft.answer) for s in sentences(p)):
            words, nums = content_words(sentence), numbers(sentence)
            if len(words) < self.min_claim_words and not nums:
                continue
            checked += 1
            best, best_nums_ok = 0.0, False
            for ev_words, ev_nums in evidence:
                support = len(words & ev_words) / len(words) if words else 1.0
                nums_ok = nums <= ev_nums
                if (nums_ok, support) > (best_nums_ok, best):
                    best, best_nums_ok = support, nums_ok
            if best < self.min_support or not best_nums_ok:
                unsupported.append({"sentence": sentence, "support": round(best, 2),
                                    "numbers_supported": best_nums_ok})
        for item in unsupported:
            why = "" if item["numbers_supported"] else "; its figures are not in them"
            reasons.append(f"groundedness: unsupported by the cited passages{why}: "
                           f"{item['sentence']!r}")
        return CheckResult(self.name, self.version, not reasons, tuple(reasons),
                           {"sentences_checked": checked, "unsupported": len(unsupported)})
