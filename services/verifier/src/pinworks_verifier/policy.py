"""Policy: promises the bank does not allow, unless the handler is entitled to make them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from pinworks_contracts.messages import TicketEnvelope
from pinworks_verifier.promises import PromiseReader, sentence_digest
from pinworks_verifier.result import CheckResult
from pinworks_verifier.text import sentences

_NEGATION = re.compile(
    r"\b(not|n't|no|never|cannot|can't|isn't|aren't|won't|unable|unfortunately)\b", re.IGNORECASE)

PROMISES: Mapping[str, Sequence[re.Pattern[str]]] = {
    "guaranteed_refund": [
        re.compile(r"\b(guarantee[sd]?|promise[sd]?|assure you)\b[^.]{0,60}\b(refund\w*|money back|"
                   r"reimburs\w*|get (it|your money) back)", re.IGNORECASE),
        re.compile(r"\b(refund\w*|money back|reimburs\w*)\b[^.]{0,40}\b(is|are|will be)\s+"
                   r"(guaranteed|certain|assured)", re.IGNORECASE),
        re.compile(r"\bwe(?:'ll| will| shall)\s+(?:definitely\s+|certainly\s+|immediately\s+|"
                   r"personally\s+)?(?:refund|reimburse)\s+you\b", re.IGNORECASE),
        re.compile(r"\b(?:give|issue|send|process)\s+you\s+a\s+full\s+refund\b", re.IGNORECASE),
    ],
    "fee_waiver": [
        re.compile(r"\b(waive[sd]?|waiving|waiver)\b", re.IGNORECASE),
        re.compile(r"\bwe(?:'ll| will)\s+(?:also\s+)?(?:refund|remove|reverse|cancel|drop)\s+"
                   r"(?:the|this|that|your|any)\s+(?:\w+\s+)?(?:fee|charge)s?\b", re.IGNORECASE),
        re.compile(r"\b(?:as a|one-off|one off)\s+(?:goodwill|courtesy)\b|\bgoodwill\b", re.IGNORECASE),
        re.compile(r"\bwe\s+(?:won't|will not)\s+charge\s+you\b", re.IGNORECASE),
    ],
    "compensation": [
        re.compile(r"\bcompensat(?:e|ion|ing)\b", re.IGNORECASE),
    ],
    "guaranteed_outcome": [
        re.compile(r"\bwe\s+guarantee\b|\b(?:is|are|will be)\s+guaranteed\b|\bguaranteed\s+to\b|"
                   r"\b100%\s+(?:sure|certain|guaranteed)\b", re.IGNORECASE),
    ],
}
"""Each promise kind and the phrasings that make it. A match negated just before it
("we can't promise a refund") is not a promise, and a sentence counts as its first (most
specific) kind only; a scheme's name (Direct Debit Guarantee) is not
either."""

_ANY_PROMISE = re.compile("|".join(f"(?:{pattern.pattern})" for patterns in PROMISES.values()
                                    for pattern in patterns), re.IGNORECASE)
"""Matches where any one of the patterns does: most sentences match none, and one search tells."""

_CLAUSE = re.compile(r"\s*[,;:]\s*(?:and|but|so|while)?\s*|\s+(?:and|but|so)\s+")
_SCHEME_NAMES = re.compile(r"Direct Debit Guarantee", re.IGNORECASE)


class PolicyCheck:
    """A sentence promises when one of the patterns above matches it (not negated) or, for
    any other wording, when the commitment reader (`promises.py`, by meaning, not by word
    list) reads it as a promise; either is allowed only when the handler is entitled to
    that kind."""

    name = "policy"
    version = "policy-1"

    def __init__(self, entitlements: Mapping[str, Sequence[str]] | None = None,
                 reader: PromiseReader | None = None) -> None:
        self.entitlements = {h: frozenset(kinds) for h, kinds in (entitlements or {}).items()}
        self.reader = reader
        if reader is not None:
            self.version = f"policy-3[{reader.version}]"

    def run(self, envelope: TicketEnvelope) -> CheckResult:
        draft = envelope.draft
        if draft is None:
            return CheckResult(self.name, self.version, True)
        entitled = set(self.entitlements.get(draft.handler, ()))
        declared = draft.details.get("entitlements")
        if isinstance(declared, list):
            entitled |= {str(kind) for kind in declared}
        reasons: list[str] = []
        found: list[str] = []
        quoted = self._passage_sentences(draft.details.get("passages"))
        for sentence in sentences(_SCHEME_NAMES.sub("scheme", draft.answer)):
            kind, reason = self._promise(sentence, quoted)
            if kind is None or kind in entitled:
                continue  # no promise, or the most specific promise in it is allowed
            found.append(kind)
            reasons.append(reason)
        return CheckResult(self.name, self.version, not reasons, tuple(reasons),
                           {"promises": sorted(set(found)), "entitled": sorted(entitled)})

    def _passage_sentences(self, passages: object) -> frozenset[str]:
        """Digests of the sentences of the passages the draft was given (kb and llm drafts)."""
        if self.reader is None or not isinstance(passages, list):
            return frozenset()
        return frozenset(sentence_digest(s) for p in passages if isinstance(p, dict)
                         for s in sentences(str(p.get("text", ""))))

    def _unread(self, part: str, quoted: frozenset[str]) -> bool:
        """A sentence or clause the reader skips: too short to promise, or word for word one of
        the bank's reviewed sentences or of the passages the draft was given. Only a whole
        reviewed sentence counts (a clause of one does not), so a reviewed sentence cut down
        to its unconditional half, or padding with passage text, is still read."""
        if len(part.split()) < 3 or self.reader is None:
            return True
        digest = sentence_digest(part)  # once: the passages' and the reviewed sentences' form
        return digest in quoted or digest in self.reader.reviewed

    def _promise(self, sentence: str, quoted: frozenset[str] = frozenset()
                 ) -> tuple[str | None, str]:
        """The kind of promise the sentence makes (its first pattern kind, else the reader's)
        and the reason to give, or (None, "")."""
        for kind, patterns in PROMISES.items() if _ANY_PROMISE.search(sentence) else ():
            match = next((m for p in patterns if (m := p.search(sentence))), None)
            if match is None:
                continue
            if _NEGATION.search(sentence[max(0, match.start() - 40):match.start()]):
                continue
            return kind, (f"policy: {kind.replace('_', ' ')} promised without entitlement "
                          f"({match.group(0)!r} in {sentence.strip()[:160]!r})")
        if self.reader is None or self._unread(sentence, quoted):
            return None, ""
        # each clause on its own too: a promise padded with passage words is still one; a
        # clause that is the whole sentence (nothing to split) is the sentence, read once
        clauses = dict.fromkeys(_CLAUSE.split(sentence))
        clauses.pop(sentence, None)
        parts = [sentence, *(clause for clause in clauses if not self._unread(clause, quoted))]
        readings = [r for part in parts if (r := self.reader.promises(part)) is not None]
        if not readings:
            return None, ""
        reading = max(readings, key=lambda r: r.probability)
        return reading.kind, (f"policy: {reading.kind.replace('_', ' ')} promised without "
                              f"entitlement (read as a promise, p={reading.probability:.2f}, "
                              f"in {sentence.strip()[:160]!r})")
