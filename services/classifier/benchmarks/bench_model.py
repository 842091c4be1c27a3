"""Benchmark the intent model: load time and per-ticket latency (single text and micro-batch),
overall and split by cascade stage (texts answered by the linear stage alone, or escalated).

The BANKING77 texts were trained on, so almost none of them is escalated here; the output adds
the mean and p50 projected at the share the cross-validation escalates (`projected_at_cv_share`).

`cpu_ms_per_ticket` is CPU time (process time, so other load on the machine inflates it far less
than wall time) of `predict([text])` per ticket, by kind of traffic: query-style (the BANKING77
sample, trained on, projected at the CV escalation share; the `pinworks bench` short queries;
CLINC150 off-topic validation queries) and multi-sentence (the `pinworks bench` one-or-two- and
multi-sentence tickets; three BANKING77 queries joined into one ticket). `--cpu-only` prints
just that section (what MODEL.md's cost table records).

Pins BLAS/OpenMP to one thread before numpy is imported, to measure one core as a service
replica would use it. Usage: python benchmarks/bench_model.py [--artifact DIR] [--n 2000]
[--cpu-only]
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


def _bench_tickets() -> dict[str, list[str]]:
    """The texts of `pinworks bench`'s tickets by kind (subject + body, as the platform sends
    them to the classifier), when the CLI package is installed beside the service."""
    try:
        from pinworks_cli import bench_texts as bt
    except ImportError:
        return {}
    kinds = {
        "bench_short": bt.SHORT_QUERIES,
        "bench_sentences": bt.ONE_OR_TWO_SENTENCES,
        "bench_multi_sentence": bt.MULTI_SENTENCE,
    }
    return {k: [f"{s}. {b}" if s else b for s, b in v] for k, v in kinds.items()}


def _joined_queries(n: int, per_ticket: int = 3) -> list[str]:
    """Multi-sentence tickets made of `per_ticket` BANKING77 queries each (new texts, though
    every sentence was trained on)."""
    pool = _texts(n * per_ticket)
    return [" ".join(pool[i : i + per_ticket]) for i in range(0, len(pool), per_ticket)]


def _cpu_ms(model: IntentModel, texts: list[str], repeat: int) -> dict[str, float]:
    """Mean CPU-ms of one `predict([text])`, and the share of the texts escalated."""
    model.predict(texts[:5])
    t0 = time.process_time()
    for _ in range(repeat):
        for t in texts:
            model.predict([t])
    cpu = (time.process_time() - t0) * 1e3 / (repeat * len(texts))
    return {
        "cpu_ms": round(cpu, 3),
        "escalated_share": round(float(model.score(texts).escalated.mean()), 3),
        "n": len(texts),
    }


def cpu_per_ticket(model: IntentModel, n: int) -> dict[str, dict[str, float]]:
    """CPU-ms per ticket by kind of traffic (see the module's docstring)."""
    bench = _bench_tickets()
    queries = _texts(n)
    out: dict[str, dict[str, float]] = {}
    trained = _cpu_ms(model, queries, 1)
    # BANKING77 rows were trained on and rarely escalate: project their cost at the CV share
    share = float(model.manifest.get("metrics", {}).get("stages", {}).get("cascade", {}).get(
        "escalated_share_in_scope", 0.0))  # fmt: skip
    off_topic = _cpu_ms(model, _off_topic_texts(200), 1)
    kept = [t for t, e in zip(queries, model.score(queries).escalated, strict=True) if not e]
    linear = _cpu_ms(model, kept[:500], 1)
    out["banking77_at_cv_share"] = {
        "cpu_ms": round((1 - share) * linear["cpu_ms"] + share * off_topic["cpu_ms"], 3),
        "escalated_share": round(share, 3),
        "n": trained["n"],
    }
    out["clinc_val_off_topic"] = off_topic
    for kind, texts in bench.items():
        out[kind] = _cpu_ms(model, texts, max(1, 200 // len(texts)))
    out["joined_banking77_x3"] = _cpu_ms(model, _joined_queries(200), 1)
    return out


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
    ap.add_argument("--cpu-only", action="store_true", help="only the CPU-ms per ticket section")
    args = ap.parse_args()
    if args.cpu_only:
        model = IntentModel.load(args.artifact)
        cpu = cpu_per_ticket(model, min(args.n, 1000))
        report = {"model_version": model.version, "cpu_ms_per_ticket": cpu}
        print(json.dumps(report, indent=2))
        return

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
        "cpu_ms_per_ticket": cpu_per_ticket(model, min(args.n, 1000)),
        "n_texts": len(texts),
        "threads": os.environ["OMP_NUM_THREADS"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
