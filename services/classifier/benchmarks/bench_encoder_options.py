"""CPU-ms per text of the second stage's encoder under onnxruntime session options and input
truncation, side by side: the variants are interleaved round by round, so load on a shared
machine falls on all of them alike.

Usage: python benchmarks/bench_encoder_options.py [--encoder DIR] [--rounds 5] [--also DIR ...]
    [--no-options]
Prints a JSON object: variant -> {query, multi_sentence} CPU-ms per text (median over rounds),
and each truncation's largest cosine distance to the untruncated vectors. `--also DIR` adds
another encoder (e.g. a shallower one from `tools/finetune_encoder.py --layers N`) with the
shipped options to the same rounds, so encoders are compared under the same load; its vectors
are another model's, so it has no distance. `--no-options` times only the shipped options and
the `--also` encoders.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from pinworks_classifier.model import default_artifact_dir  # noqa: E402
from pinworks_classifier.model.encoder import MODEL_FILE, TOKENIZER_FILE  # noqa: E402

QUERIES = [
    "card not arrived yet",
    "how do I reset my PIN?",
    "Why was my top-up reverted? I need the money today",
    "Is there a fee for exchanging euros to dollars in the app?",
    "what's the weather like in paris tomorrow",
    "I think someone stole my phone, what do I do with my account?",
]


def _multi_sentence() -> list[str]:
    try:
        from pinworks_cli.bench_texts import MULTI_SENTENCE, ONE_OR_TWO_SENTENCES
    except ImportError:
        return [" ".join(QUERIES)]
    return [f"{s}. {b}" for s, b in (*ONE_OR_TWO_SENTENCES, *MULTI_SENTENCE)]


def _session(model: Path, level: str, threads: int, spinning: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def _embedder(session: ort.InferenceSession, tok: Tokenizer, max_tokens: int) -> Callable[[str], np.ndarray]:
    def embed(text: str) -> np.ndarray:
        ids = tok.encode(text).ids
        if len(ids) > max_tokens:
            ids = [*ids[: max_tokens - 1], ids[-1]]  # keep [SEP]
        x = np.asarray([ids], np.int64)
        out: np.ndarray = session.run(None, {"input_ids": x, "attention_mask": np.ones_like(x)})[0][0]
        return out / np.linalg.norm(out)

    return embed


def _other_encoder(encoder: Path) -> Callable[[str], np.ndarray]:
    """Another encoder directory, with the shipped session options and its own tokenizer."""
    tok = Tokenizer.from_file(str(encoder / TOKENIZER_FILE))
    tok.no_padding()
    tok.no_truncation()
    return _embedder(_session(encoder / MODEL_FILE, "ORT_ENABLE_ALL", 1, True), tok, 128)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--encoder", type=Path, default=default_artifact_dir() / "encoder")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--also", type=Path, action="append", default=[], help="another encoder directory")
    ap.add_argument("--no-options", action="store_true", help="no session-option or truncation variants")
    args = ap.parse_args()
    tok = Tokenizer.from_file(str(args.encoder / TOKENIZER_FILE))
    tok.no_padding()
    tok.no_truncation()
    model = args.encoder / MODEL_FILE
    variants = {
        "shipped: ENABLE_ALL, 1 thread, 128 tokens": (_session(model, "ORT_ENABLE_ALL", 1, True), 128),
        "ENABLE_EXTENDED, 1 thread": (_session(model, "ORT_ENABLE_EXTENDED", 1, True), 128),
        "ENABLE_BASIC, 1 thread": (_session(model, "ORT_ENABLE_BASIC", 1, True), 128),
        "ENABLE_ALL, 2 threads, spinning": (_session(model, "ORT_ENABLE_ALL", 2, True), 128),
        "ENABLE_ALL, 2 threads, no spinning": (_session(model, "ORT_ENABLE_ALL", 2, False), 128),
        "ENABLE_ALL, 1 thread, 64 tokens": (_session(model, "ORT_ENABLE_ALL", 1, True), 64),
        "ENABLE_ALL, 1 thread, 32 tokens": (_session(model, "ORT_ENABLE_ALL", 1, True), 32),
    }
    if args.no_options:
        variants = dict(list(variants.items())[:1])
    kinds = {"query": QUERIES, "multi_sentence": _multi_sentence()}
    embedders = {name: _embedder(s, tok, n) for name, (s, n) in variants.items()}
    others = {f"{d}: shipped options": _other_encoder(d) for d in args.also}
    embedders.update(others)
    samples: dict[str, dict[str, list[float]]] = {v: {k: [] for k in kinds} for v in embedders}
    for _ in range(args.rounds):
        for name, embed in embedders.items():
            for kind, texts in kinds.items():
                embed(texts[0])
                t0 = time.process_time()
                for _rep in range(3):
                    for text in texts:
                        embed(text)
                samples[name][kind].append((time.process_time() - t0) * 1e3 / (3 * len(texts)))
    reference = embedders["shipped: ENABLE_ALL, 1 thread, 128 tokens"]
    multi = kinds["multi_sentence"]
    ref_vectors = np.stack([reference(t) for t in multi])
    report: dict[str, dict[str, float | None]] = {}
    for name, embed in embedders.items():
        vectors = np.stack([embed(t) for t in multi])
        distance = round(float(1 - (vectors * ref_vectors).sum(axis=1).min()), 4)
        report[name] = {
            **{f"{kind}_cpu_ms": round(statistics.median(v), 3) for kind, v in samples[name].items()},
            "max_cosine_distance_multi": None if name in others else distance,
        }
    tokens = [len(tok.encode(t).ids) for t in multi]
    summary = {"multi_sentence_tokens_mean": round(statistics.mean(tokens), 1), "variants": report}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
