"""Text helpers shared by the checks: sentences, content words, the draft's body."""

from __future__ import annotations

import re

SIGN_OFF_CHARS = 60
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9£$€\"'(])|\n\s*\n")
_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)?")
_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for
from further had has have having he her here hers him his how i if in into is it its
itself just let me more most my no nor not of off on once only or other our ours out
over own same she should so some such than that the their theirs them then there these
they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself ll ve re d s t m also get
got please thanks thank hi hello us one
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
NUMBER = re.compile(r"£?\d+(?:[.,]\d+)*%?")


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def body_paragraphs(answer: str) -> list[str]:
    """The answer's paragraphs without its greeting line and its short sign-off."""
    parts = paragraphs(answer)
    while len(parts) > 1 and len(parts[-1]) <= SIGN_OFF_CHARS:
        parts.pop()
    if len(parts) > 1 and len(parts[0]) <= 40 and parts[0].endswith(","):
        parts.pop(0)
    return parts


def main_text(answer: str) -> str:
    """The last paragraph of the answer before its sign-off."""
    parts = body_paragraphs(answer)
    return parts[-1] if parts else ""


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s and s.strip()]


def stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    return {stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in NUMBER.findall(text)}
