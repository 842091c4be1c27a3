"""Numbered placeholders for text sent to a model, and the customer's own values put back in its
reply.

A model endpoint is outside the bank: what it is sent carries ``[CARD_1]``, ``[EMAIL_1]``,
``[NAME_2]`` instead of the data, numbered per kind so that one value keeps one placeholder (and
two different cards two) and the model can still say "the card [CARD_1]". Its reply goes to the
same customer, so only the placeholders that were issued for this ticket are restored, each to
the customer's own text; a placeholder the model made up is reported, never guessed at.

    pseudonyms = Pseudonyms(known_names=("Jane Doe",))
    prompt = pseudonyms.apply("I'm Jane Doe, card 4111 1111 1111 1111")
    # "I'm [NAME_1], card [CARD_1]"
    restored = pseudonyms.restore("Dear [NAME_1], ...")
    # restored.text == "Dear Jane Doe, ...", restored.unknown == []
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from pinworks_common.personal_data.detect import Kind, find

_KINDS = "|".join(kind.value for kind in Kind)
PLACEHOLDER_RE = re.compile(rf"\[\s*({_KINDS})(?:[ _-]?(\d{{1,4}}))?\s*\]", re.IGNORECASE)
"""A placeholder as a model may write it back: ``[CARD_1]``, also ``[card 1]``; an unnumbered
``[NAME]`` matches too (and is never one that was issued)."""


def _defuse_lookalikes(text: str) -> str:
    """Placeholder-shaped text the customer typed, written with parentheses: it can never be
    taken for (or restored as) one that was issued."""
    return PLACEHOLDER_RE.sub(lambda m: f"({m.group(0)[1:-1]})", text)


@dataclass(frozen=True)
class Restored:
    """A reply with the issued placeholders it used put back; ``unknown`` lists the
    placeholder-shaped text that was never issued (left as it is)."""

    text: str
    used: list[str]
    unknown: list[str]


@dataclass
class Pseudonyms:
    """The placeholders of one conversation: every text passed to `apply` shares the numbering."""

    known_names: tuple[str, ...] = ()
    regions: tuple[str, ...] = ("GB", "US")
    _by_value: dict[tuple[Kind, str], str] = field(default_factory=dict)
    _originals: dict[str, str] = field(default_factory=dict)
    _issued: Counter[Kind] = field(default_factory=Counter)

    def apply(self, text: str) -> str:
        """``text`` with every piece of personal data replaced by its numbered placeholder."""
        text = _defuse_lookalikes(text)
        parts: list[str] = []
        pos = 0
        for finding in find(text, known_names=self.known_names, regions=self.regions):
            parts += [text[pos:finding.start], self._placeholder(finding.kind, finding.value,
                                                                  finding.text)]
            pos = finding.end
        parts.append(text[pos:])
        return "".join(parts)

    def _placeholder(self, kind: Kind, value: str, original: str) -> str:
        key = (kind, value)
        if key not in self._by_value:
            self._issued[kind] += 1
            placeholder = f"[{kind.value}_{self._issued[kind]}]"
            self._by_value[key] = placeholder
            self._originals[placeholder] = original
        return self._by_value[key]

    def restore(self, text: str) -> Restored:
        """``text`` with each issued placeholder replaced by the value it stands for."""
        used: list[str] = []
        unknown: list[str] = []

        def put_back(match: re.Match[str]) -> str:
            number = match.group(2)
            placeholder = f"[{match.group(1).upper()}_{number}]" if number else None
            if placeholder in self._originals:
                used.append(placeholder)
                return self._originals[placeholder]
            unknown.append(match.group(0))
            return match.group(0)

        restored = PLACEHOLDER_RE.sub(put_back, text)
        return Restored(restored, list(dict.fromkeys(used)), list(dict.fromkeys(unknown)))

    @property
    def counts(self) -> dict[str, int]:
        """How many distinct values of each kind were replaced (what may be recorded)."""
        return {kind.value: n for kind, n in sorted(self._issued.items())}
