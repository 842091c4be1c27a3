"""Tokenising for the knowledge-base index: lowercase, stop words out, light suffix stemming.

The stemmer is deliberately small: it only has to make "declined", "declines" and "decline"
meet, and "top-ups" meet "top up", across short help-centre passages and customer tickets.
"""

from __future__ import annotations

import re

__all__ = ["STOP_WORDS", "stem", "tokenize"]

_WORD_RE = re.compile(r"[a-z0-9]+")
_PHRASES = (
    (re.compile(r"\b(?:cash ?machines?|cash ?points?|atms?)\b"), "atm"),
    (re.compile(r"\bpass ?words?\b"), "passcode"),
)
"""Multi-word spellings folded to one index key before splitting."""

_STOP_WORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing done down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just let me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    im ive id dont cant wont didnt doesnt isnt hasnt havent wasnt arent s t d ll m re ve hi
    hello hey please thanks thank help hereby also get got getting still yet already really us
    know need want like tell ok okay oh
"""

STOP_WORDS: frozenset[str] = frozenset(_STOP_WORDS_TEXT.split())
"""Function words plus ticket filler ("please", "help", "thanks") that carry no topic."""

_IRREGULAR = {
    "withdrew": "withdraw",
    "withdrawn": "withdraw",
    "withdrawal": "withdraw",
    "withdrawals": "withdraw",
    "withdrawing": "withdraw",
    "paid": "pay",
    "took": "tak",
    "taken": "tak",
    "kept": "keep",
    "kid": "child",
    "kids": "child",
    "children": "child",
    "childs": "child",
    "sent": "send",
    "stole": "steal",
    "stolen": "steal",
    "lost": "lose",
    "lose": "lose",
    "atms": "atm",
    "cashpoint": "atm",
    "cashpoints": "atm",
    "pins": "pin",
    "cheques": "cheque",
    "ups": "up",
    "topup": "top",
    "topups": "top",
    "topping": "top",
    "topped": "top",
    "abroad": "abroad",
    "mastercard": "mastercard",
    "visa": "visa",
    "fees": "fee",
    "charges": "charg",
}
"""Forms the suffix rules get wrong or that customers spell differently from the articles."""


def _undouble(word: str) -> str:
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        return word[:-1]
    return word


def stem(word: str) -> str:
    """Strip common English suffixes so inflections of one word share an index key."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ication"):
        word = word[: -len("ication")] + "y"
    elif word.endswith("ied") and len(word) > 4 or word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:
        word = _undouble(word[:-3])
    elif word.endswith("ed") and len(word) > 4:
        word = _undouble(word[:-2])
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lowercase, split on anything that isn't a letter or digit, drop stop words, stem."""
    tokens: list[str] = []
    lowered = text.lower().replace("'", "")
    for pattern, replacement in _PHRASES:
        lowered = pattern.sub(replacement, lowered)
    for raw in _WORD_RE.findall(lowered):
        if raw in STOP_WORDS:
            continue
        token = stem(raw)
        if token and token not in STOP_WORDS:
            tokens.append(token)
    return tokens
