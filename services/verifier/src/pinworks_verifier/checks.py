"""Verifier checks without I/O. Each check is versioned and returns a pass or its reasons."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pinworks_common.contracts import TicketEnvelope
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


@dataclass(frozen=True)
class CheckResult:
    check: str
    version: str
    passed: bool
    reasons: tuple[str, ...] = ()
    details: dict[str, object] = field(default_factory=dict)


PLACEHOLDER = re.compile(r"\{[^}]*\}|\[\[|\]\]|<[A-Z_]{3,}>|\bTODO\b|\bTBD\b|lorem ipsum|\bNone\b")
SENTENCE_END = re.compile(r"[.!?)\"']\s*$")
MIN_ANSWER_CHARS = 60


SIGN_OFF_CHARS = 60


def main_text(answer: str) -> str:
    """The answer without its sign-off ("Best wishes,\nLarkspur Bank Support")."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", answer.strip()) if p.strip()]
    while len(paragraphs) > 1 and len(paragraphs[-1]) <= SIGN_OFF_CHARS:
        paragraphs.pop()
    return paragraphs[-1] if paragraphs else ""


class CompletenessCheck:
    """The draft exists, is finished, and talks about what the customer asked."""

    name = "completeness"
    version = "completeness-1"

    def run(self, envelope: TicketEnvelope) -> CheckResult:
        draft = envelope.draft
        reasons: list[str] = []
        answer = (draft.answer if draft else "").strip()
        if not answer:
            reasons.append("completeness: the draft is empty")
        else:
            if len(answer) < MIN_ANSWER_CHARS:
                reasons.append(f"completeness: the draft is only {len(answer)} characters")
            placeholder = PLACEHOLDER.search(answer)
            if placeholder:
                reasons.append(f"completeness: unfilled placeholder {placeholder.group(0)!r}")
            if not SENTENCE_END.search(main_text(answer)):
                reasons.append("completeness: the draft looks truncated (no closing punctuation)")
            terms = [term.lower() for term in (draft.required_terms if draft else [])]
            if terms and not any(term in answer.lower() for term in terms):
                intent = envelope.classification.intent if envelope.classification else "?"
                reasons.append(
                    f"completeness: the draft mentions none of the terms an answer about "
                    f"{intent} needs ({', '.join(terms)})"
                )
        return CheckResult(self.name, self.version, not reasons, tuple(reasons))


LEGAL_THREAT = re.compile(
    r"\b(lawyer|solicitor|attorney|sue|suing|lawsuit|legal action|court|ombudsman|regulator|"
    r"small claims|report you to)\b", re.IGNORECASE)
FRAUD_SIGNAL = re.compile(
    r"\b(fraud|fraudulent|scam(?:med)?|stolen|hacked|someone else (?:used|is using)|"
    r"didn'?t authori[sz]e|unauthori[sz]ed|identity theft)\b", re.IGNORECASE)
VULNERABILITY_SIGNAL = re.compile(
    r"\b(suicid\w*|kill myself|end my life|self[- ]harm|bereave\w*|passed away|died|"
    r"terminal(?:ly)? ill|domestic abuse|can'?t afford (?:food|rent)|homeless|desperate)\b",
    re.IGNORECASE)


class CustomerStateCheck:
    """Very unhappy, threatening, defrauded or vulnerable customers go to a person."""

    name = "customer_state"
    version = "customer-state-1"

    def __init__(self, negative_threshold: float = -0.6) -> None:
        self.negative_threshold = negative_threshold
        self.analyzer = SentimentIntensityAnalyzer()

    def run(self, envelope: TicketEnvelope) -> CheckResult:
        text = " ".join(filter(None, [envelope.ticket.subject, envelope.ticket.body]))
        compound = float(self.analyzer.polarity_scores(text[:5000])["compound"])
        reasons: list[str] = []
        if compound <= self.negative_threshold:
            reasons.append(f"customer state: very negative sentiment ({compound:.2f})")
        for label, pattern in (
            ("legal threat", LEGAL_THREAT),
            ("fraud signal", FRAUD_SIGNAL),
            ("vulnerability signal", VULNERABILITY_SIGNAL),
        ):
            match = pattern.search(text)
            if match:
                reasons.append(f"customer state: {label} ({match.group(0)!r})")
        return CheckResult(self.name, self.version, not reasons, tuple(reasons),
                           {"sentiment": compound})


class Check(Protocol):
    name: str
    version: str

    def run(self, envelope: TicketEnvelope) -> CheckResult: ...


def verify(checks: Sequence[Check], envelope: TicketEnvelope) -> list[CheckResult]:
    return [check.run(envelope) for check in checks]


def failing_reasons(results: Sequence[CheckResult]) -> list[str]:
    return [reason for result in results for reason in result.reasons]
