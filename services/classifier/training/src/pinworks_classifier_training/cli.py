"""`pinworks classifier train|eval`: retrain the intent model and evaluate an artifact.

Mounted as the `classifier` group of the `pinworks` CLI through the entry point this package
declares (`pinworks.cli`); the service package itself has no commands, so an image with only
inference installed offers none."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

# The model and training modules load numpy, scikit-learn and the encoder: imported inside the
# commands, so that mounting this app in the `pinworks` CLI costs nothing until one runs.

classifier_app = typer.Typer(help="Intent classifier: train and evaluate artifacts.")


DataDirOption = Annotated[
    Path | None, typer.Option(help="Folder with banking77/ and clinc150/ (default: shipped)")
]
OutOption = Annotated[
    Path | None, typer.Option(help="Artifact directory to write (default: artifacts/<version>)")
]
FoldsOption = Annotated[int, typer.Option(min=2, help="Cross-validation folds")]
CascadeOption = Annotated[
    bool, typer.Option(help="Add the sentence-embedding stage (--no-cascade: TF-IDF linear only)")
]
EscalateShareOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Share of in-scope tickets, least confident first, sent to the second stage",
    ),
]
NeighboursOption = Annotated[
    int,
    typer.Option(
        min=0,
        help="Nearest training examples voting in the second stage and informing its "
        "confidence (0: none)",
    ),
]
HeadWeightOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Share of the blend given to the embedding stage")
]
FinetunedOption = Annotated[
    Path | None,
    typer.Option(
        help="Fine-tuned encoders from tools/finetune_encoder.py: each CV fold uses its own, "
        "the artifact bundles the final one (default: the shipped pretrained encoder)"
    ),
]
EncoderOption = Annotated[
    str | None,
    typer.Option(
        help="Name of the shipped encoder (pinworks_classifier/encoder/NAME) the second stage "
        "embeds with: an ONNX transformer, or a static one from tools/distill_static.py "
        "(default: all-minilm-l6-v2-int8; ignored with --finetuned)"
    ),
]
PromoteOption = Annotated[bool, typer.Option(help="Also replace the artifact loaded by default")]


@classifier_app.command()
def train(
    data_dir: DataDirOption = None,
    out: OutOption = None,
    folds: FoldsOption = 5,
    cascade: CascadeOption = True,
    escalate_share: EscalateShareOption = 0.45,
    neighbours: NeighboursOption = 10,
    head_weight: HeadWeightOption = 0.5,
    finetuned: FinetunedOption = None,
    encoder: EncoderOption = None,
    promote: PromoteOption = False,
) -> None:
    """Cross-validate, calibrate and fit the model; write a new artifact directory."""
    from pinworks_classifier.model import default_artifact_dir
    from pinworks_classifier.model.data import default_data_dir

    from .config import TrainConfig
    from .pipeline import train_model

    data_dir = data_dir or default_data_dir()
    if not (data_dir / "banking77" / "train.csv").exists():
        raise typer.BadParameter(f"no banking77/train.csv under {data_dir}", param_hint="--data-dir")
    staging = out or default_artifact_dir().parent / "_staging"
    config = TrainConfig(
        folds=folds, cascade=cascade, escalate_share=escalate_share, head_weight=head_weight,
        neighbours_k=neighbours,
    )  # fmt: skip
    if encoder:
        config = replace(config, encoder=encoder)
    try:
        manifest = train_model(data_dir, staging, config, log=typer.echo, finetuned_dir=finetuned)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--finetuned") from exc
    target = staging if out is not None else _named_by_version(staging, manifest["version"])
    typer.echo(_summary(manifest["metrics"]))
    typer.echo(f"artifact {manifest['version']} written to {target}")
    if promote:
        _promote(target, default_artifact_dir())


def _named_by_version(staging: Path, version: str) -> Path:
    """Move the staged artifact to a directory named after its version, beside it."""
    target = staging.parent / version
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def _promote(target: Path, current: Path) -> None:
    """Make `target` the artifact the service loads by default."""
    if current.exists():
        shutil.rmtree(current)
    shutil.copytree(target, current)
    typer.echo(f"promoted to {current}")


@classifier_app.command("eval")
def eval_(
    data: Annotated[Path, typer.Argument(help="CSV with columns text,category (oos = out of scope)")],
    artifact: Annotated[Path | None, typer.Option(help="Artifact directory (default: shipped)")] = None,
    out: Annotated[Path, typer.Option(help="Folder for eval.json and reliability.png")] = Path(
        "classifier-eval"
    ),
    latency_samples: Annotated[int, typer.Option(min=0, help="Texts timed one by one")] = 1000,
) -> None:
    """Accuracy, macro-F1, selective accuracy, OOS recall/false alarms, ECE and latency."""
    from pinworks_classifier.model import IntentModel
    from pinworks_classifier.model.data import read_labelled_csv

    from .evaluation import evaluate, latency_profile, plot_reliability

    texts, labels = read_labelled_csv(data)
    if not texts:
        raise typer.BadParameter(f"{data} has no rows", param_hint="DATA")
    model = IntentModel.load(artifact)
    report = evaluate(model, texts, labels)
    if latency_samples:
        report["latency"] = latency_profile(model, texts, max_single=latency_samples)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(report, indent=2), "utf-8")
    plot_reliability(report, out / "reliability.png", f"{model.version} on {data.name}")
    typer.echo(f"model {model.version}, {report['n']} rows from {data}")
    typer.echo(_summary(report))
    if report["unknown_labels"]:
        typer.echo(f"warning: labels unknown to the model: {report['unknown_labels'][:10]}")
    typer.echo(f"wrote {out / 'eval.json'} and {out / 'reliability.png'}")


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def _summary(m: dict[str, Any]) -> str:
    """Human-readable summary of a metrics dict (eval report or training CV metrics)."""
    r = m.get("banking77_cv", m)
    ins, sel, oos = r["in_scope"], r["selective"], r["out_of_scope"]
    lines = [
        f"in-scope rows        {ins['n']}",
        f"accuracy             {_fmt(ins['accuracy'])}",
        f"macro-F1             {_fmt(ins['macro_f1'])}",
        f"acc. incl. OOS flag  {_fmt(ins['accuracy_with_oos_flag'])}",
        f"ECE (15 bins)        {_fmt(r['calibration']['ece'])}",
        "selective accuracy:  threshold  coverage  accuracy",
    ]
    for row in sel["by_threshold"]:
        lines.append(
            f"                     {row['threshold']:9.2f}  {_fmt(row['coverage']):>8}  "
            f"{_fmt(row['accuracy']):>8}"
        )
    if sel["at_80_coverage"]:
        a = sel["at_80_coverage"]
        lines.append(
            f"at 80% coverage      accuracy {_fmt(a['accuracy'])} (threshold {_fmt(a['threshold'])})"
        )
    lines.append(f"OOS false-alarm rate {_fmt(oos['false_alarm_rate'])}")
    if "escalated_share" in m:
        lines.append(f"second stage used    {_fmt(m['escalated_share'])} of rows")
    for name, stage in m.get("stages", {}).items():
        lines.append(
            f"stage {name:<17}accuracy {_fmt(stage['accuracy'])}, "
            f"selective@80% {_fmt(stage['selective_accuracy_at_80'])}"
        )
    if "banking77_cv" in m:
        for key in ("clinc_train_oos_cv", "clinc_val_oos", "clinc_oos_val_oos"):
            if key in m:
                lines.append(f"OOS recall {key:<18}{_fmt(m[key]['oos_recall'])} (n={m[key]['n_oos']})")
    else:
        lines.append(f"OOS recall           {_fmt(oos['oos_recall'])} (n={oos['n_oos']})")
    lat = m.get("latency")
    if lat:
        s, b = lat["single_ms"], lat["batch_per_text_ms"]
        lines.append(
            f"latency single text  p50 {s['p50']:.3f} ms  p95 {s['p95']:.3f} ms  p99 {s['p99']:.3f} ms"
        )
        lines.append(
            f"latency batch of {lat['batch_size']:<3} p50 {b['p50']:.3f} ms/text  "
            f"p95 {b['p95']:.3f}  p99 {b['p99']:.3f}"
        )
    return "\n".join(lines)
