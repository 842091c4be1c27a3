"""What the router reads from a ticket's own words: text, sentiment and urgency.

Sentiment is VADER's compound score (-1 very negative … +1 very positive) over subject and body.
Urgency is a small lexicon: each distinct cue below that occurs in the text counts once;
0 cues is `low`, 1 cue is `medium`, 2 or more is `high`. Both are computed only when a rule
asks for them, once per ticket.
"""

from __future__ import annotations

import re
from functools import cache, cached_property

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from pinworks_common.customer_state import CustomerStateReader
from pinworks_contracts.messages import CustomerState, TicketSubmission

URGENCY_LEVELS = ("low", "medium", "high")

URGENCY_CUES: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern, re.IGNORECASE)
    for name, pattern in {
        "urgent": r"\burgent(ly)?\b",
        "asap": r"\basap\b|\bas soon as possible\b",
        "immediately": r"\bimmediately\b|\bright (now|away)\b|\bat once\b",
        "emergency": r"\bemergenc(y|ies)\b",
        "critical": r"\bcritical\b",
        "today": r"\b(by|before) (today|tonight|tomorrow)\b|\bthis (morning|afternoon|evening)\b",
        "deadline": r"\bdeadline\b|\btime[- ]sensitive\b",
        "stuck": r"\b(stranded|stuck|locked out)\b",
        "escalate": r"\bescalat(e|ing|ion)\b",
        "exclamations": r"!{2,}",
    }.items()
}


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


@cache
def _reader() -> CustomerStateReader:
    return CustomerStateReader()


def sentiment_of(text: str) -> float:
    """VADER compound polarity of `text`, in [-1, 1]."""
    return float(_analyzer().polarity_scores(text)["compound"])


def urgency_cues(text: str) -> list[str]:
    return [name for name, pattern in URGENCY_CUES.items() if pattern.search(text)]


def urgency_level(cues: list[str]) -> str:
    return URGENCY_LEVELS[min(len(cues), 2)]


class TicketFeatures:
    """Lazily computed features of one ticket; `used` records which ones a decision read."""

    def __init__(self, ticket: TicketSubmission, state: CustomerState | None = None) -> None:
        self.ticket = ticket
        self.used: dict[str, object] = {}
        self._state = state

    @cached_property
    def customer_state(self) -> list[str]:
        """Signal kinds of the recorded reading (read from the text when none was recorded,
        e.g. in `policy simulate`)."""
        state = self._state or _reader().read(self.ticket.subject, self.ticket.body)
        kinds: list[str] = [signal.kind for signal in state.signals]
        self.used["customer_state"] = kinds
        self.used["customer_state_version"] = state.version
        return kinds

    @cached_property
    def text(self) -> str:
        return f"{self.ticket.subject}\n{self.ticket.body}" if self.ticket.subject else self.ticket.body

    @cached_property
    def sentiment(self) -> float:
        value = round(sentiment_of(self.text), 4)
        self.used["sentiment"] = value
        return value

    @cached_property
    def urgency(self) -> str:
        cues = urgency_cues(self.text)
        level = urgency_level(cues)
        self.used["urgency"] = level
        self.used["urgency_cues"] = cues
        return level
