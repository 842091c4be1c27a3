"""Commitments read by meaning: a small multinomial logistic regression over a sentence's words,
word pairs and character n-grams, trained offline (`eval/build_promise_model.py`) on a labelled
set of promises and non-promises written for it and on every sentence of the bank's own
reviewed answers (templates and help-centre articles, labelled as no promise).

No word list decides: "we credit your account" and "free of charge forever" are read as a
refund and a fee waiver because sentences like them were labelled so, and the reader is measured
on held-out paraphrases it never saw (`eval/measure_promises.py`). The artifact is a few hundred
kilobytes of numpy arrays shipped in the package; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pinworks_verifier.artifact_files import read_artifact

FORMAT = "promise-logreg-1"
NONE = "none"
ARTIFACT = "promise_reader"

_TOKEN = re.compile(r"£?\d+(?:[.,]\d+)*%?|[a-z]+(?:'[a-z]+)?")
_CONTRACTIONS = (("can", re.compile(r"\bcan'?t\b"), "cannot"),
                 ("won", re.compile(r"\bwon'?t\b"), "will not"),
                 ("n't", re.compile(r"n't\b"), " not"), ("'ll", re.compile(r"'ll\b"), " will"),
                 ("'re", re.compile(r"'re\b"), " are"), ("'ve", re.compile(r"'ve\b"), " have"),
                 ("i'm", re.compile(r"\bi'm\b"), "i am"), ("'d", re.compile(r"'d\b"), " would"))
"""Each contraction as (what every match of it contains, the pattern, what it spells out): a
text without that part has nothing for the pattern to replace, and is not searched."""
_WORDS = re.compile(r"[a-z0-9£%]+(?:[.,][0-9]+)*")
_FIGURE = re.compile(r"£?\d[\d.,]*%?")
_FIGURE_STARTS = frozenset("£0123456789")


def normal_form(text: str) -> str:
    """A sentence's words, lower-cased, contractions spelt out, punctuation dropped and every
    figure one token: "We can't cancel it." and "we cannot cancel it" are the same sentence, and
    so are "we charge a 2% fee" and "we charge a 4% fee" (whether a sentence promises does not
    hang on its figures; wrong figures are the groundedness check's to find)."""
    text = text.lower().replace("\u2019", "'")
    for part, pattern, spelt in _CONTRACTIONS:
        if part in text:
            text = pattern.sub(spelt, text)
    return " ".join("<num>" if w[0] in _FIGURE_STARTS and _FIGURE.fullmatch(w) else w
                    for w in _WORDS.findall(text))


def sentence_digest(text: str) -> str:
    return hashlib.sha256(normal_form(text).encode()).hexdigest()[:16]


def _token(raw: str) -> str:
    if raw[0] == "£":
        return "<money>"
    return "<num>" if raw[0].isdigit() else raw


@lru_cache(maxsize=1 << 16)
def _char_grams(word: str) -> tuple[str, ...]:
    """A word's 3-5 character n-grams (with its edges), in order; kept per word, since the
    same words recur in every draft."""
    padded = f"^{word}$"
    return tuple(f"c:{padded[i:i + n]}" for n in (3, 4, 5) for i in range(len(padded) - n + 1))


def features(sentence: str) -> Counter[str]:
    """Words, adjacent word pairs and 3-5 character n-grams of each word (with its edges)."""
    words = [_token(w) for w in _TOKEN.findall(sentence.lower())]
    feats: Counter[str] = Counter(f"w:{w}" for w in words)
    feats.update(f"b:{a} {b}" for a, b in zip(["<s>", *words], [*words, "</s>"], strict=True))
    for word in words:
        if not word.startswith("<"):
            feats.update(_char_grams(word))
    return feats


@dataclass(frozen=True)
class Reading:
    kind: str
    """The most likely promise kind (never `none`)."""
    probability: float
    """The model's probability that the sentence makes some promise (1 - P(none))."""


class PromiseReader:
    """Sentence -> the probability it commits the bank to a refund, a fee waiver, compensation
    or an outcome, and which. `threshold` is the artifact's calibrated one unless given."""

    def __init__(self, labels: Sequence[str], vocab: Sequence[str], weights: np.ndarray,
                 bias: np.ndarray, meta: dict[str, Any], threshold: float | None = None) -> None:
        self.labels = list(labels)
        self.vocab = {feature: i for i, feature in enumerate(vocab)}
        self.weights = weights.astype(np.float32)  # features x labels
        self.bias = bias.astype(np.float32)
        self.meta = meta
        self.none_index = self.labels.index(NONE)
        self.threshold = float(threshold if threshold is not None else meta["threshold"])
        self.version = str(meta.get("version", "promise-unversioned"))
        self.reviewed = frozenset(str(d) for d in meta.get("reviewed_sentences", ()))

    def is_reviewed(self, sentence: str) -> bool:
        """Whether the sentence (in normal form) is one of the bank's reviewed sentences, the
        templates' and help-centre articles' the artifact was built from: what the bank
        publishes is not an unauthorised promise, so it is not read."""
        return sentence_digest(sentence) in self.reviewed

    def vectorize(self, sentence: str) -> tuple[np.ndarray, np.ndarray]:
        pairs = [(i, c) for f, c in features(sentence).items()
                 if (i := self.vocab.get(f)) is not None]
        if not pairs:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        found_ids, found_counts = zip(*pairs, strict=True)
        ids = np.array(found_ids, np.int64)
        values = 1 + np.log(np.array(found_counts, np.float32))
        return ids, values / float(np.linalg.norm(values))

    def probabilities(self, sentence: str) -> np.ndarray:
        ids, values = self.vectorize(sentence)
        logits = values @ self.weights[ids] + self.bias
        exp = np.exp(logits - logits.max())
        return np.asarray(exp / exp.sum())

    def read(self, sentence: str) -> Reading:
        probs = self.probabilities(sentence)
        promise = 1.0 - float(probs[self.none_index])
        others = [(float(p), label) for p, label in zip(probs, self.labels, strict=True)
                  if label != NONE]
        return Reading(max(others)[1], promise)

    def promises(self, sentence: str) -> Reading | None:
        """The reading when the sentence is read as a promise at the threshold, else None."""
        reading = self.read(sentence)
        return reading if reading.probability >= self.threshold else None

    # ------------------------------------------------------------------ storage

    def save(self, directory: Path, name: str = ARTIFACT) -> None:
        vocab = sorted(self.vocab, key=self.vocab.__getitem__)
        body = {**{k: v for k, v in self.meta.items() if k != "version"}, "format": FORMAT,
                "labels": self.labels, "vocab": vocab, "threshold": self.threshold}
        payload = json.dumps(body, sort_keys=True).encode()
        digest = hashlib.sha256(payload)
        digest.update(self.weights.tobytes())
        digest.update(self.bias.tobytes())
        body["version"] = f"{name}-{digest.hexdigest()[:8]}"
        (directory / f"{name}.json").write_text(json.dumps(body, sort_keys=True) + "\n")
        np.savez_compressed(directory / f"{name}.npz", weights=self.weights.astype(np.float16),
                            bias=self.bias)

    @classmethod
    def load(cls, directory: Path | None = None, name: str = ARTIFACT,
             threshold: float | None = None) -> PromiseReader:
        """``None`` means the artifact shipped in this package."""
        meta, arrays = read_artifact(name, directory, FORMAT)
        labels, vocab = meta.pop("labels"), meta.pop("vocab")
        return cls(labels, vocab, arrays["weights"].astype(np.float32), arrays["bias"], meta,
                   threshold)
