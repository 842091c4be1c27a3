"""The intents the classifier knows, for everyone who lets a person name one (console, CLI).

The list is a data file in this package (`intents.txt`), kept equal to the shipped classifier
artifact's labels by a test, so services check an agent's intent without importing the
classifier.
"""

from __future__ import annotations

import difflib
import re
from functools import cache
from importlib import resources

__all__ = ["UnknownIntent", "intent_label", "known_intents", "nearest_intents", "validate_intent"]


class UnknownIntent(ValueError):
    """An intent the classifier does not know; `suggestions` are the nearest known ones."""

    def __init__(self, intent: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {' or '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown intent {intent!r}{hint}")
        self.intent = intent
        self.suggestions = suggestions


@cache
def known_intents() -> tuple[str, ...]:
    """Every intent label, in the classifier's order."""
    text = resources.files("pinworks_contracts").joinpath("intents.txt").read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines()
                 if line.strip() and not line.startswith("#"))


def _key(intent: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", intent.casefold()).strip("_")


@cache
def _by_key() -> dict[str, str]:
    return {_key(intent): intent for intent in known_intents()}


def nearest_intents(text: str, count: int = 3) -> list[str]:
    """The known intents closest to `text` (a typo, a label typed in another case), best first."""
    keys = _by_key()
    matches = difflib.get_close_matches(_key(text), list(keys), n=count, cutoff=0.6)
    return [keys[match] for match in matches]


def validate_intent(text: str) -> str:
    """The known intent `text` names (case and separators forgiven), or `UnknownIntent`."""
    intent = _by_key().get(_key(text))
    if intent is None:
        raise UnknownIntent(text.strip(), nearest_intents(text))
    return intent


def intent_label(intent: str | None) -> str:
    """A person's name for an intent label: `card_arrival` -> `Card arrival`."""
    if not intent:
        return "-"
    words = intent.replace("_", " ").strip()
    return words[:1].upper() + words[1:].lower() if words else intent
