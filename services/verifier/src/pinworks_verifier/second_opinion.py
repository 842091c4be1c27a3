"""A second opinion on the ticket's intent, independent of the classifier where it matters.

The classifier reads a ticket with a LinearSVC over word + in-word character n-grams and a
MiniLM sentence encoder (services/classifier/MODEL.md). Its confident mistakes are the ones a
similar model repeats, so this reader differs in both family and features: a complement naive
Bayes (Rennie et al., 2003, "Tackling the poor assumptions of naive Bayes text classifiers")
over word unigrams, word bigrams and *order-free word pairs* (every two distinct words of the
ticket), with no character n-grams and no embeddings. Training is counting
(`second_opinion_training`; the shipped artifact by `services/verifier/eval/
build_second_opinion.py`, on BANKING77 train without CV fold 0; the out-of-fold readers that
measure it by `second_opinion_readings.py`); inference is numpy only, well under a millisecond.

`SecondOpinionCheck` fails a draft when this reader prefers another intent to the classified
one by at least `margin` (a log-likelihood gap chosen on half of fold 0, see the artifact's
manifest); the reason names both intents.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pinworks_contracts.messages import TicketEnvelope
from pinworks_verifier.artifact_files import dense_mass, read_artifact
from pinworks_verifier.result import CheckResult
from pinworks_verifier.tfidf import log_tfidf

FORMAT = "pinworks-verifier-cnb/1"
ARTIFACT = "second_opinion"
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[£$€]")


def _words(text: str) -> list[str]:
    if text.isascii():  # NFKD leaves ASCII as it is and no ASCII character combines
        return _WORD_RE.findall(text.lower())
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _WORD_RE.findall(text.replace("\u2019", "'").lower())


def pair_features(text: str) -> Counter[str]:
    """Words, adjacent word bigrams and every unordered pair of distinct words ("~a|b")."""
    words = _words(text)
    grams = list(words)
    grams.extend(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    grams.extend(f"~{a}|{b}" for a, b in itertools.combinations(sorted(set(words)), 2))
    return Counter(grams)


def class_mass_digest(rows: np.ndarray, cols: np.ndarray, mass: np.ndarray, idf: np.ndarray,
                      body: bytes) -> str:
    """The content hash the artifact's version is made of (also checked by the tests)."""
    digest = hashlib.sha256(body)
    for array in (cols, idf, mass, rows):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class SecondReading:
    """The second reader's verdict on one text: its best intent and how far the classified
    intent trails it (0 when they agree; log-likelihood units); `top`: its three best readings."""

    best: str
    gap: float
    top: tuple[tuple[str, float], ...]


class SecondOpinionModel:
    """Complement naive Bayes over L2-normalised log-tf-idf pair features (numpy only)."""

    def __init__(self, labels: list[str], vocab: list[str], idf: np.ndarray, mass: np.ndarray,
                 meta: dict[str, Any]) -> None:
        self.labels = list(labels)
        self.index = {label: i for i, label in enumerate(self.labels)}
        self.vocab = {feature: i for i, feature in enumerate(vocab)}
        self.idf = idf.astype(np.float32)
        self.meta = meta
        self.version = str(meta.get("version", "cnb-unversioned"))
        alpha = float(meta["alpha"])
        complement = mass.sum(axis=0, keepdims=True) - mass + alpha  # labels x features
        weights = -np.log(complement / complement.sum(axis=1, keepdims=True))
        self.weights_t = np.ascontiguousarray(weights.T, dtype=np.float32)  # features x labels

    def vectorize(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        return log_tfidf(pair_features(text), self.vocab, self.idf)

    def scores(self, text: str) -> np.ndarray:
        """Joint log-likelihood of every label, shifted so the best scores 0."""
        ids, values = self.vectorize(text)
        joint = values @ self.weights_t[ids] if len(ids) else np.zeros(len(self.labels), np.float32)
        return np.asarray(joint - joint.max(), dtype=np.float64)

    def read(self, text: str, intent: str) -> SecondReading:
        scores = self.scores(text)
        best = int(np.argmax(scores))
        position = self.index.get(intent)
        gap = float("inf") if position is None else 0.0 - float(scores[position])
        order = np.argsort(-scores)[:3]
        return SecondReading(self.labels[best], gap,
                             tuple((self.labels[i], round(float(scores[i]), 3)) for i in order))

    @property
    def margin(self) -> float | None:
        """The threshold chosen when the artifact was built (see its manifest)."""
        value = self.meta.get("threshold", {}).get("margin")
        return None if value is None else float(value)

    @classmethod
    def load(cls, directory: Path | None = None, name: str = ARTIFACT) -> SecondOpinionModel:
        """Load ``<name>.json`` + ``<name>.npz``; ``None`` means the artifact in this package."""
        meta, arrays = read_artifact(name, directory, FORMAT)
        labels, vocab = meta.pop("labels"), meta.pop("vocab")
        mass = dense_mass(arrays, len(labels), len(vocab), np.float64)
        return cls(labels, vocab, arrays["idf"], mass, meta)


class SecondOpinionCheck:
    """The ticket must not read, to the second reader, confidently as another intent."""

    name = "second_opinion"
    version = "second-opinion-1"

    def __init__(self, model: SecondOpinionModel, margin: float | None = None) -> None:
        chosen = margin if margin is not None else model.margin
        if chosen is None:
            raise ValueError("second_opinion: no margin configured and none in the artifact")
        self.model = model
        self.margin = chosen
        self.version = f"second-opinion-1[{model.version}]"

    def run(self, envelope: TicketEnvelope) -> CheckResult:
        if envelope.classification is None:
            return CheckResult(self.name, self.version, True, (), {"applies": False})
        intent = envelope.classification.intent
        if intent not in self.model.index:
            return CheckResult(self.name, self.version, True, (), {"applies": False})
        ticket = envelope.ticket
        reading = self.model.read(" ".join(filter(None, [ticket.subject, ticket.body])), intent)
        details: dict[str, object] = {"second_opinion": reading.best,
                                      "gap": round(reading.gap, 3),
                                      "reads_as": list(reading.top)}
        if reading.best == intent or reading.gap < self.margin:
            return CheckResult(self.name, self.version, True, (), details)
        return CheckResult(self.name, self.version, False, (
            f"second_opinion: the ticket reads as {reading.best}, not the classified {intent} "
            f"(gap {reading.gap:.2f} >= {self.margin:.2f})",), details)
