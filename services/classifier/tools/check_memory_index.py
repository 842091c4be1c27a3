"""Check that the neighbour memory's integer pre-filter changes no answer of the shipped model.

Every BANKING77 train row and every CLINC150 `val` / `oos_val` row (13,103 texts) is predicted
twice by the same loaded artifact, in the service's micro-batches: with the pre-filter
(`MemoryIndex`, what inference uses) and with the full float32 product over the memory (what it
used before). It also compares the k nearest rows of every text's embedding, escalated or not:
the same similarities (within 1e-6) carrying the same labels; two rows of equal similarity may
stand in for each other at the k-th place. Prints the counts and the largest confidence
difference as JSON; exits 1 on any difference in intent, out-of-scope flag or neighbours, or a
confidence more than `--tolerance` apart.

The default tolerance, 1e-4, is float32's for a confidence: the full product itself moves a
confidence by up to 7.1e-5 between a text in a batch of 32 and the same text alone (a matrix
against a vector product, sums in another order; the isotonic map's slope amplifies the 1e-7
difference in a similarity).

Usage: python tools/check_memory_index.py [--artifact DIR] [--batch 32] [--tolerance 1e-4]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from pinworks_classifier.model import IntentModel  # noqa: E402
from pinworks_classifier.model.artifact import NeighbourMemory  # noqa: E402
from pinworks_classifier.model.data import default_data_dir, read_labelled_csv  # noqa: E402


def rows(data_dir: Path) -> dict[str, list[str]]:
    """The texts checked, by split."""
    banking, _ = read_labelled_csv(data_dir / "banking77" / "train.csv")
    clinc = json.loads((data_dir / "clinc150" / "data.json").read_text("utf-8"))
    return {"banking77_train": banking,
            "clinc150_val": [text for text, _ in clinc["val"]],
            "clinc150_oos_val": [text for text, _ in clinc["oos_val"]]}


def _memory(model: IntentModel) -> NeighbourMemory:
    head = model._art.head
    assert head is not None and head.neighbours is not None, "the artifact has no neighbour memory"
    return head.neighbours


def predict_both(model: IntentModel, texts: list[str], batch: int, tolerance: float
                 ) -> dict[str, float]:
    """Predictions with and without the pre-filter, compared."""
    memory = _memory(model)
    index = memory.index
    found = {"texts": len(texts), "escalated": 0, "intent_differs": 0, "oos_differs": 0,
             "confidence_differs": 0, "max_confidence_diff": 0.0}
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        memory.index = index
        fast = model.predict(chunk)
        memory.index = None
        full = model.predict(chunk)
        memory.index = index
        for a, b in zip(fast, full, strict=True):
            found["escalated"] += int(b.second_stage)
            found["intent_differs"] += int(a.intent != b.intent)
            found["oos_differs"] += int(a.out_of_scope != b.out_of_scope)
            diff = abs(a.confidence - b.confidence)
            found["max_confidence_diff"] = max(found["max_confidence_diff"], diff)
            found["confidence_differs"] += int(diff > tolerance)
    return found


def neighbours_both(model: IntentModel, texts: list[str]) -> dict[str, int]:
    """The k nearest rows of every text's embedding, by the pre-filter and by the full product:
    the texts whose neighbours differ in similarity or label."""
    memory = _memory(model)
    assert memory.index is not None and model._encoder is not None
    differs = other_rows = 0
    for start in range(0, len(texts), 256):
        embeddings = model._encoder.encode(texts[start : start + 256])
        fast, fast_sims = memory.index.nearest(embeddings, memory.k)
        sims = embeddings @ memory.embeddings.T
        full = np.argpartition(-sims, memory.k - 1, axis=1)[:, : int(memory.k)]
        full_sims = np.take_along_axis(sims, full, axis=1)
        for row in range(len(embeddings)):
            other_rows += set(fast[row]) != set(full[row])
            same = (np.abs(np.sort(fast_sims[row]) - np.sort(full_sims[row])).max() <= 1e-6
                    and sorted(memory.labels[fast[row]]) == sorted(memory.labels[full[row]]))
            differs += not same
    return {"texts": len(texts), "neighbours_differ": differs,
            "tied_rows_swapped": other_rows - differs}


def encode_once(model: IntentModel) -> None:
    """Each text's vector is computed once and reused by both passes (a text is encoded alone,
    so its vector is the same every time; this only saves the check's time)."""
    encoder = model._encoder
    assert encoder is not None
    encode = encoder.encode
    seen: dict[str, np.ndarray] = {}

    def cached(texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in seen]
        if missing:
            seen.update(zip(missing, encode(missing), strict=True))
        return np.stack([seen[t] for t in texts]) if texts else encode(texts)

    encoder.encode = cached  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--artifact", type=Path, default=None)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    model = IntentModel.load(args.artifact)
    encode_once(model)
    report: dict[str, object] = {"model_version": model.version, "tolerance": args.tolerance}
    failed = False
    for split, texts in rows(default_data_dir()).items():
        predicted = predict_both(model, texts, args.batch, args.tolerance)
        near = neighbours_both(model, texts)
        report[split] = {**predicted, **near}
        failed |= any(predicted[k] for k in ("intent_differs", "oos_differs",
                                             "confidence_differs")) or bool(near["neighbours_differ"])
    print(json.dumps(report, indent=2))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
