"""Customer state: legal threats, fraud signals, vulnerability and very negative sentiment.

Read once, by the classifier stage, for every accepted ticket and recorded in the audit
(`decisions`, stage `classifier`, key `customer_state`). The router's rules and the escalation
queue's priority and SLA act on that recorded reading (`recorded_states`), never on the copy in
a message; the verifier's customer-state check uses the same reader.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING

from pinworks_common.ledger import keys
from pinworks_common.ledger.book import Ledger
from pinworks_common.ledger.records import DecisionRef
from pinworks_contracts.messages import CustomerSignal, CustomerState
from pinworks_contracts.subjects import Stage

if TYPE_CHECKING:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

__all__ = [
    "DECISION_KEY", "NEGATIVE_THRESHOLD", "CustomerStateReader", "recorded_states",
    "signal_reason", "state_reasons",
]

DECISION_KEY = keys.CUSTOMER_STATE
"""Decision key of the classifier stage's reading in `decisions`."""
NEGATIVE_THRESHOLD = -0.8
"""VADER compound score at or below which sentiment counts as very negative."""
MAX_TEXT_CHARS = 5000

LEGAL_THREAT = re.compile(
    r"\b(lawyer|solicitor|attorney|sue|suing|lawsuit|legal action|court|ombudsman|regulator|"
    r"small claims|report you to|trading standards|journalist)\b", re.IGNORECASE)
FRAUD_SIGNAL = re.compile(
    r"\b(fraud|fraudulent|fraudster\w*|scam(?:med|mer)?|stolen|hacked|"
    r"someone else (?:used|is using)|didn'?t authori[sz]e|unauthori[sz]ed|identity theft)\b",
    re.IGNORECASE)
VULNERABILITY_SIGNAL = re.compile(
    r"\b(suicid\w*|kill myself|end my life|self[- ]harm|bereave\w*|passed away|died|"
    r"terminal(?:ly)? ill|domestic abuse|can'?t afford (?:food|rent)|homeless|desperate)\b",
    re.IGNORECASE)
PATTERNS = (("legal_threat", LEGAL_THREAT), ("fraud", FRAUD_SIGNAL),
            ("vulnerability", VULNERABILITY_SIGNAL))

DOMAIN_NEUTRAL = (
    "wrong", "stolen", "lost", "fraud", "charged", "mistake", "error", "problem", "problems",
    "rejected", "reject", "failed", "fail", "fails", "failure", "blocked", "block", "dispute",
    "missing", "cancel", "cancelled", "canceled", "strange", "suspicious", "debt", "risk",
    "unauthorized", "declined", "expired", "owe", "lose", "stuck",
)
"""Words VADER scores as negative that, in a bank's tickets, name the topic rather than the
customer's mood ("my transfer failed", "the wrong exchange rate"); fraud and theft are caught by
their own signal."""

LABELS = {"legal_threat": "legal threat", "fraud": "fraud signal",
          "vulnerability": "vulnerability signal", "very_negative": "very negative sentiment"}


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    for word in DOMAIN_NEUTRAL:
        analyzer.lexicon.pop(word, None)
    return analyzer


class CustomerStateReader:
    """Reads a ticket's customer state from its subject and body (pure; ~0.2 ms a ticket)."""

    def __init__(self, negative_threshold: float = NEGATIVE_THRESHOLD) -> None:
        self.negative_threshold = negative_threshold
        self.version = f"customer-state-3[neg<={negative_threshold:g}]"

    def read(self, subject: str | None, body: str) -> CustomerState:
        text = " ".join(filter(None, [subject, body]))[:MAX_TEXT_CHARS]
        compound = round(float(_analyzer().polarity_scores(text)["compound"]), 4)
        signals: list[CustomerSignal] = []
        if compound <= self.negative_threshold:
            signals.append(CustomerSignal(kind="very_negative", evidence=f"{compound:.2f}"))
        for kind, pattern in PATTERNS:
            match = pattern.search(text)
            if match:
                signals.append(CustomerSignal(kind=kind, evidence=match.group(0)))  # type: ignore[arg-type]
        return CustomerState(signals=signals, sentiment=compound, version=self.version)


def signal_reason(signal: CustomerSignal) -> str:
    """`customer state: legal threat ('ombudsman')`, the wording agents and the audit see."""
    if signal.kind == "very_negative":
        return f"customer state: very negative sentiment ({signal.evidence})"
    return f"customer state: {LABELS[signal.kind]} ({signal.evidence!r})"


def state_reasons(state: CustomerState | None) -> list[str]:
    return [signal_reason(signal) for signal in state.signals] if state else []


def state_ref(ticket_id: str) -> DecisionRef:
    """Where the classifier stage recorded a ticket's reading."""
    return DecisionRef(ticket_id, Stage.CLASSIFIER.value, DECISION_KEY)


async def recorded_states(ledger: Ledger, ticket_ids: Iterable[str]) -> dict[str, CustomerState]:
    """The readings the classifier stage recorded, by ticket id (tickets without one are absent)."""
    stored = await ledger.decided(state_ref(ticket_id) for ticket_id in set(ticket_ids))
    return {ref.ticket_id: CustomerState.model_validate(output) for ref, output in stored.items()}
