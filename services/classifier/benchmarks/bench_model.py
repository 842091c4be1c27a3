"""Benchmark the intent model: load time and per-ticket latency (single text and micro-batch),
overall and split by cascade stage (texts answered by the linear stage alone, or escalated).

The BANKING77 texts were trained on, so almost none of them is escalated here; the output adds
the mean and p50 projected at the share the cross-validation escalates (`projected_at_cv_share`).

Pins BLAS/OpenMP to one thread before numpy is imported, to measure one core as a service
replica would use it. Usage: python benchmarks/bench_model.py [--artifact DIR] [--n 2000]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from pinworks_classifier.model import IntentModel  # noqa: E402
from pinworks_classifier.model.data import CLINC_BANKING_INTENTS  # noqa: E402

FALLBACK_TEXTS = [
    "my card still hasn't arrived",
    "I was charged twice for the same purchase at a shop",
    "How long does a transfer from the UK take?",
    "Why was my top-up reverted? I need the money today",
    "what's the weather like in paris tomorrow",
    "can you tell me a joke",
    "I think someone stole my phone, what do I do with my account?",
    "Is there a fee for exchanging euros to dollars in the app?",
]


def _texts(n: int) -> list[str]:
    """Realistic ticket texts: the copied BANKING77 queries if present, else a fixed sample."""
    path = Path(__file__).resolve().parents[1] / "data" / "banking77" / "train.csv"
    texts: list[str] = []
    if path.exists():
        with path.open(newline="", encoding="utf-8") as fh:
            texts = [row["text"] for row in csv.DictReader(fh)]
    texts = texts or FALLBACK_TEXTS
    rng = np.random.default_rng(0)
    return [texts[i] for i in rng.integers(0, len(texts), size=n)]


def _off_topic_texts(n: int) -> list[str]:
    """CLINC150 validation texts outside banking: never trained on, and all escalated."""
    path = Path(__file__).resolve().parents[1] / "data" / "clinc150" / "data.json"
    if not path.exists():
        return FALLBACK_TEXTS[4:6] * (n // 2)
    pairs = json.loads(path.read_text("utf-8"))["val"]
    return [text for text, intent in pairs if intent not in CLINC_BANKING_INTENTS][:n]


def _projection(
    model: IntentModel, single: list[float], escalated: np.ndarray, escalated_single: list[float]
) -> dict[str, float]:
    """Per-ticket mean and p50 if the in-scope share escalated in cross-validation is."""
    stages = model.manifest.get("metrics", {}).get("stages", {})
    share = float(stages.get("cascade", {}).get("escalated_share_in_scope", 0.0))
    linear = [s for s, e in zip(single, escalated, strict=True) if not e]
    n_esc = round(share / max(1e-9, 1 - share) * len(linear))
    mix = linear + [escalated_single[i % len(escalated_single)] for i in range(n_esc)]
    return {
        "share": round(share, 4),
        "mean_ms": round(statistics.mean(mix) * 1e3, 4),
        "p50_ms": round(float(np.percentile(mix, 50)) * 1e3, 4),
        "p95_ms": round(float(np.percentile(mix, 95)) * 1e3, 4),
    }


def _pct(values_s: list[float]) -> dict[str, float]:
    ms = np.asarray(values_s) * 1e3
    return {f"p{q}": round(float(np.percentile(ms, q)), 4) for q in (50, 95, 99)}


def main() -> None:
    """Run the benchmark and print a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--artifact", type=Path, default=None)
    ap.add_argument("--n", type=int, default=2000, help="texts timed one by one")
    ap.add_argument("--batch-sizes", default="8,32,128")
    args = ap.parse_args()

    loads = []
    for _ in range(3):
        t0 = time.perf_counter()
        model = IntentModel.load(args.artifact)
        loads.append(time.perf_counter() - t0)
    texts = _texts(args.n)
    model.predict(texts[:10])

    single = []
    for t in texts:
        t0 = time.perf_counter()
        model.predict([t])
        single.append(time.perf_counter() - t0)
    escalated = model.score(texts).escalated
    escalated_single = []
    for t in _off_topic_texts(200):
        t0 = time.perf_counter()
        model.predict([t])
        escalated_single.append(time.perf_counter() - t0)

    batches: dict[str, dict[str, float]] = {}
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        per_text = []
        for i in range(0, len(texts) - bs + 1, bs):
            t0 = time.perf_counter()
            model.predict(texts[i : i + bs])
            per_text.append((time.perf_counter() - t0) / bs)
        batches[str(bs)] = {**_pct(per_text), "texts_per_s": round(1.0 / statistics.mean(per_text))}

    result = {
        "model_version": model.version,
        "load_s": {"first": round(loads[0], 4), "median": round(statistics.median(loads), 4)},
        "single_text_ms": _pct(single),
        "escalated_share": round(float(escalated.mean()), 4),
        "single_text_ms_linear_stage_only": _pct(
            [s for s, e in zip(single, escalated, strict=True) if not e]
        ),
        "single_text_ms_escalated_off_topic": _pct(escalated_single),
        "mean_single_text_ms": round(statistics.mean(single) * 1e3, 4),
        "projected_at_cv_share": _projection(model, single, escalated, escalated_single),
        "micro_batch_per_text_ms": batches,
        "n_texts": len(texts),
        "threads": os.environ["OMP_NUM_THREADS"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
