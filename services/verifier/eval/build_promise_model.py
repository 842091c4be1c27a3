"""Train the policy check's commitment reader and calibrate its threshold.

    .venv/bin/python services/verifier/eval/build_promise_model.py

Training data: `promises/train.tsv` (sentences written for it, each labelled `none` or a promise
kind) and every sentence of the bank's reviewed answers (templates and help-centre articles),
labelled `none`: what the bank publishes is not an unauthorised promise. `promises/heldout.tsv`
is never read here (`measure_promises.py` measures on it).

Model: multinomial logistic regression (L2) over `promises.features`, fitted by full-batch
gradient descent with Adam; deterministic. The threshold on P(some promise) is the lowest that
keeps the out-of-fold false alarms (5 folds) at most `FALSE_ALARM` on the `none` sentences.
Writes `src/pinworks_verifier/artifacts/promise_reader.{json,npz}`.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ARTIFACTS, EVAL_DIR, articles, bare_template, template_entries  # noqa: E402

from pinworks_verifier.promises import NONE, PromiseReader, features, sentence_digest  # noqa: E402
from pinworks_verifier.text import sentences  # noqa: E402

LABELS = [NONE, "guaranteed_refund", "fee_waiver", "compensation", "guaranteed_outcome"]
TRAIN = EVAL_DIR / "promises" / "train.tsv"
FALSE_ALARM = 0.01
L2 = 1e-5
"""Chosen out of fold, never on the held-out set: of 1e-3 (the first artifact), 3e-4, 1e-4, 3e-5,
1e-5, 3e-6 and 1e-6, 1e-5 gave the highest out-of-fold recall at the calibrated threshold
(0.696; 1e-3 gave 0.520: so strong a penalty left the model reading any "we will ... you"
sentence as a promise, its own training sentences included). Also tried and not kept: balancing
`none` against all promise kinds together (recall 0.637) and training on clauses of the bank's
sentences as well (false alarms on written non-promises 0.089 -> 0.111)."""
STEPS = 400
LEARNING_RATE = 0.05
BANK_WEIGHT = 0.5
"""A bank sentence counts half as much as a written one: there are many of them, alike."""


def read_tsv(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, sentence = line.split("\t", 1)
        if label not in LABELS:
            raise ValueError(f"{path.name}: unknown label {label!r}")
        rows.append((sentence.strip(), label))
    return rows


def bank_sentences() -> list[str]:
    texts = [bare_template(entry) for entry in template_entries().values()]
    texts += [p for article in articles() for p in article["paragraphs"]]
    found = {s for text in texts for paragraph in text.split("\n\n") for s in sentences(paragraph)
             if len(s.split()) >= 3}
    return sorted(found)


def matrix(texts: list[str], vocab: dict[str, int]) -> sparse.csr_matrix:
    rows, cols, data = [], [], []
    for row, text in enumerate(texts):
        pairs = [(vocab[f], c) for f, c in features(text).items() if f in vocab]
        if pairs:
            values = 1 + np.log(np.array([c for _, c in pairs], np.float32))
            rows += [row] * len(pairs)
            cols += [i for i, _ in pairs]
            data += list(values / np.linalg.norm(values))
    return sparse.csr_matrix((np.array(data, np.float32), (rows, cols)),
                             shape=(len(texts), len(vocab)))


def fit(x: sparse.csr_matrix, y: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted softmax regression by Adam; class weights balance the labels' total weight."""
    n, f = x.shape
    k = len(LABELS)
    totals = np.bincount(y, weights=weight, minlength=k)
    sample = weight * (totals.sum() / (k * np.maximum(totals, 1e-9)))[y]
    sample = sample / sample.sum()
    onehot = np.eye(k, dtype=np.float32)[y]
    w = np.zeros((f, k), np.float32)
    b = np.zeros(k, np.float32)
    m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    for step in range(1, STEPS + 1):
        logits = np.asarray(x @ w) + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        delta = (p - onehot) * sample[:, None].astype(np.float32)
        g_w = np.asarray(x.T @ delta) + L2 * w
        g_b = delta.sum(axis=0)
        for param, grad, m, v in ((w, g_w, m_w, v_w), (b, g_b, m_b, v_b)):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= LEARNING_RATE * (m / (1 - 0.9 ** step)) / (
                np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
    return w.astype(np.float16).astype(np.float32), b


def promise_probability(x: sparse.csr_matrix, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    logits = np.asarray(x @ w) + b
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return np.asarray(1 - p[:, LABELS.index(NONE)])


def fold_of(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 5


def main() -> None:
    written = read_tsv(TRAIN)
    bank = bank_sentences()
    texts = [t for t, _ in written] + bank
    y = np.array([LABELS.index(label) for _, label in written] + [0] * len(bank))
    weight = np.array([1.0] * len(written) + [BANK_WEIGHT] * len(bank))
    df: Counter[str] = Counter()
    for text in texts:
        df.update(features(text).keys())
    vocab = {f: i for i, f in enumerate(sorted(f for f, n in df.items() if n >= 2))}
    x = matrix(texts, vocab)

    folds = np.array([fold_of(t) for t in texts])
    oof = np.zeros(len(texts))
    for fold in range(5):
        held = folds == fold
        w, b = fit(x[~held], y[~held], weight[~held])
        oof[held] = promise_probability(x[held], w, b)
    negatives = np.sort(oof[y == 0])
    threshold = float(negatives[int(np.ceil(len(negatives) * (1 - FALSE_ALARM))) - 1]) + 1e-4
    threshold = max(threshold, 0.5)
    positives = oof[y != 0]
    written_neg = oof[:len(written)][y[:len(written)] == 0]

    w, b = fit(x, y, weight)
    reader = PromiseReader(LABELS, sorted(vocab, key=vocab.__getitem__), w, b, {
        "task": "sentence -> promise kind or none (multinomial logistic regression, L2)",
        "training_data": {
            "promises/train.tsv": hashlib.sha256(TRAIN.read_bytes()).hexdigest(),
            "written_rows": len(written), "bank_sentences": len(bank)},
        "features": "words, word pairs, 3-5 char n-grams of words; min_df 2",
        "reviewed_sentences": sorted({sentence_digest(s) for s in bank}),
        "calibration": {
            "method": "5-fold out-of-fold P(promise); lowest threshold with false alarms "
                      f"<= {FALSE_ALARM} on none sentences, at least 0.5",
            "oof_recall": round(float((positives >= threshold).mean()), 4),
            "oof_false_alarm_bank": round(float((oof[len(written):] >= threshold).mean()), 4),
            "oof_false_alarm_written_none": round(float((written_neg >= threshold).mean()), 4)},
    }, threshold)
    reader.save(ARTIFACTS)
    print(f"{len(written)} written rows, {len(bank)} bank sentences, {len(vocab)} features")
    print(f"threshold {threshold:.4f}; out-of-fold: recall {(positives >= threshold).mean():.3f}, "
          f"false alarms on bank sentences {(oof[len(written):] >= threshold).mean():.3f}, "
          f"on written non-promises {(written_neg >= threshold).mean():.3f}")


if __name__ == "__main__":
    main()
