"""A small multinomial naive-Bayes intent scorer, numpy only, trained from the project's data.

The verifier uses it as an *independent* second reading of a ticket (and of a draft): a draft
that answers intent X is only plausible when the ticket reads as X too. Training is counting
(see ``services/verifier/eval/build_model.py``); the artifact stores the per-intent feature
mass sparsely, so it is small, loads in milliseconds and scores a text in well under a
millisecond.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pinworks_verifier.artifact_files import dense_mass, read_artifact
from pinworks_verifier.tfidf import log_tfidf

FORMAT = "pinworks-verifier-nb/1"
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[£$€]")


def normalize(text: str) -> str:
    if text.isascii():  # NFKD leaves ASCII as it is and no ASCII character combines
        return text.lower()
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.replace("\u2019", "'").replace("\u2018", "'").lower()


def _stem(token: str) -> str:
    if len(token) > 3 and token.endswith("s") and not token.endswith("ss"):
        return token[:-1]
    return token


@lru_cache(maxsize=1 << 16)
def _char_grams(token: str) -> tuple[str, ...]:
    """A token's in-word char 3-5-grams, in order; kept per token, since the same words recur
    in every ticket and draft."""
    padded = f" {token} "
    return tuple("#" + padded[i:i + n] for n in (3, 4, 5) for i in range(len(padded) - n + 1))


def features(text: str, chars: bool = True) -> Counter[str]:
    """Word unigrams and bigrams (light plural stemming), plus in-word char 3-5-grams."""
    tokens = [_stem(t) for t in _WORD_RE.findall(normalize(text))]
    grams: list[str] = list(tokens)
    grams.extend(f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False))
    for token in tokens if chars else ():
        grams.extend(_char_grams(token))
    return Counter(grams)


@dataclass(frozen=True)
class IntentLikelihoods:
    """Log-likelihood of each intent for one text, shifted so the best intent scores 0."""

    labels: Sequence[str]
    scores: np.ndarray

    def margin(self, intent: str) -> float:
        """0 when ``intent`` is the best reading, negative (log-ratio to the best) otherwise."""
        index = {label: i for i, label in enumerate(self.labels)}.get(intent)
        return float("-inf") if index is None else float(self.scores[index])

    def best(self, k: int = 3) -> list[tuple[str, float]]:
        order = np.argsort(-self.scores)[:k]
        return [(self.labels[i], round(float(self.scores[i]), 3)) for i in order]


class NaiveBayesIntentScorer:
    """Multinomial naive Bayes over L2-normalised log-tf-idf features."""

    def __init__(self, labels: Sequence[str], vocab: Sequence[str], idf: np.ndarray,
                 log_prob: np.ndarray, log_prior: np.ndarray, meta: dict[str, Any]) -> None:
        self.labels = list(labels)
        self.vocab = {feature: i for i, feature in enumerate(vocab)}
        self.idf = idf.astype(np.float32)
        self.log_prob_t = np.ascontiguousarray(log_prob.T, dtype=np.float32)  # features x labels
        self.log_prior = log_prior.astype(np.float32)
        self.meta = meta
        self.chars = bool(meta.get("char_ngrams", True))
        self._mass: np.ndarray | None = None  # set by train(), needed only by save()
        self._alpha = float(meta.get("alpha", 0.3))
        self.version = str(meta.get("version", "nb-unversioned"))

    def vectorize(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        return log_tfidf(features(text, self.chars), self.vocab, self.idf)

    def score(self, text: str) -> IntentLikelihoods:
        ids, vals = self.vectorize(text)
        scores = vals @ self.log_prob_t[ids] + self.log_prior
        return IntentLikelihoods(self.labels, scores - scores.max())

    # ------------------------------------------------------------------ training and storage

    @classmethod
    def train(cls, examples: Iterable[tuple[str, str]], labels: Sequence[str], *,
              alpha: float = 0.3, min_df: int = 2, chars: bool = True,
              meta: dict[str, Any] | None = None) -> NaiveBayesIntentScorer:
        """Fit on ``(text, intent)`` pairs. Uniform prior: tickets arrive in any mix."""
        docs = [(features(text, chars), intent) for text, intent in examples]
        df: Counter[str] = Counter()
        for feats, _ in docs:
            df.update(feats.keys())
        vocab = sorted(f for f, n in df.items() if n >= min_df)
        index = {f: i for i, f in enumerate(vocab)}
        n_docs = len(docs)
        idf = np.array([math.log((1 + n_docs) / (1 + df[f])) + 1 for f in vocab], np.float32)
        label_index = {label: i for i, label in enumerate(labels)}
        mass = np.zeros((len(labels), len(vocab)), np.float64)
        for feats, intent in docs:
            ids = [index[f] for f in feats if f in index]
            vals = np.array([(1 + math.log(feats[f])) * idf[index[f]] for f in feats if f in index])
            if len(ids):
                mass[label_index[intent], ids] += vals / np.linalg.norm(vals)
        log_prob = np.log((mass + alpha) / (mass + alpha).sum(axis=1, keepdims=True))
        model = cls(labels, vocab, idf, log_prob, np.zeros(len(labels)),
                    {**(meta or {}), "char_ngrams": chars})
        model._mass, model._alpha = mass, alpha
        return model

    def save(self, directory: Path, name: str) -> None:
        mass = self._mass
        if mass is None:
            raise ValueError("only a freshly trained model can be saved")
        rows, cols = np.nonzero(mass)
        vocab = sorted(self.vocab, key=self.vocab.__getitem__)
        body = {"format": FORMAT, "labels": self.labels, "vocab": vocab,
                "alpha": self._alpha, **self.meta}
        payload = json.dumps(body, sort_keys=True).encode()
        arrays: dict[str, np.ndarray] = {"rows": rows.astype(np.int16), "cols": cols.astype(np.int32),
                  "mass": mass[rows, cols].astype(np.float32), "idf": self.idf}
        digest = hashlib.sha256(payload)
        for key in sorted(arrays):
            digest.update(arrays[key].tobytes())
        body["version"] = f"{name}-{digest.hexdigest()[:8]}"
        (directory / f"{name}.json").write_text(json.dumps(body, sort_keys=True) + "\n")
        np.savez_compressed(directory / f"{name}.npz", rows=arrays["rows"], cols=arrays["cols"],
                            mass=arrays["mass"], idf=arrays["idf"])

    @classmethod
    def load(cls, name: str, directory: Path | None = None) -> NaiveBayesIntentScorer:
        """Load ``<name>.json`` + ``<name>.npz``; ``None`` means the artifacts in this package."""
        meta, arrays = read_artifact(name, directory, FORMAT)
        labels, vocab = meta.pop("labels"), meta.pop("vocab")
        mass = dense_mass(arrays, len(labels), len(vocab))
        alpha = float(meta["alpha"])
        log_prob = np.log((mass + alpha) / (mass + alpha).sum(axis=1, keepdims=True))
        return cls(labels, vocab, arrays["idf"], log_prob, np.zeros(len(labels)), meta)
