"""Safe on-disk format of a trained model: JSON + `.npz` (no pickle anywhere).

Layout of an artifact directory:
- `manifest.json`: labels, feature config, calibration, OOS rule, metrics, provenance, version.
- `vocab.json`: the word and char n-gram vocabularies (terms in column order).
- `weights.npz`: int8 weights with per-class scales, bias, IDF vectors, calibration map.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .features import FeatureConfig, Featurizer

MANIFEST = "manifest.json"
VOCAB = "vocab.json"
WEIGHTS = "weights.npz"
FORMAT = "pinworks-intent-linear/1"
_ARRAYS = ("w_q", "w_scale", "bias", "word_idf", "char_idf", "iso_x", "iso_y")


@dataclass
class LinearArtifact:
    """Everything needed for inference, in memory."""

    featurizer: Featurizer
    labels: list[str]  # classifier columns: the 77 intents then "oos"
    weights: np.ndarray  # (n_features, n_labels) float32
    bias: np.ndarray  # (n_labels,) float32
    temperature: float
    iso_x: np.ndarray  # isotonic map of confidence (x -> y); empty = identity
    iso_y: np.ndarray
    oos_threshold: float  # flag OOS when P(oos) >= this


def quantize(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-class int8 quantization: 4x smaller, negligible effect on the argmax."""
    scale = np.abs(weights).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    q = np.ascontiguousarray(np.clip(np.rint(weights / scale), -127, 127), dtype=np.int8)
    return q, scale.astype(np.float32)


def _arrays(art: LinearArtifact) -> dict[str, np.ndarray]:
    w_q, w_scale = quantize(np.ascontiguousarray(art.weights))
    return {
        "w_q": w_q,
        "w_scale": w_scale,
        "bias": art.bias.astype(np.float32),
        "word_idf": art.featurizer.word_idf.astype(np.float32),
        "char_idf": art.featurizer.char_idf.astype(np.float32),
        "iso_x": art.iso_x.astype(np.float32),
        "iso_y": art.iso_y.astype(np.float32),
    }


def _model_section(art: LinearArtifact) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "labels": art.labels,
        "features": asdict(art.featurizer.config),
        "calibration": {"method": "temperature+isotonic", "temperature": art.temperature},
        "oos": {"rule": "p_oos >= threshold", "threshold": art.oos_threshold},
    }


def content_version(
    model: dict[str, Any], vocab: dict[str, list[str]], arrays: dict[str, np.ndarray], prefix: str
) -> str:
    """Version id from the content (not the file bytes: zip headers carry timestamps)."""
    h = hashlib.sha256()
    h.update(json.dumps(model, sort_keys=True).encode())
    h.update(json.dumps(vocab, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return f"{prefix}-{h.hexdigest()[:8]}"


def save(art: LinearArtifact, out_dir: Path, extra: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Write the artifact to `out_dir`; `extra` (metrics, provenance...) goes into the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = _arrays(art)
    vocab = {
        "word": sorted(art.featurizer.word_vocab, key=art.featurizer.word_vocab.__getitem__),
        "char": sorted(art.featurizer.char_vocab, key=art.featurizer.char_vocab.__getitem__),
    }
    model = _model_section(art)
    version = content_version(model, vocab, arrays, prefix)
    # numpy's stubs mistake **arrays for its keyword options; every value is a plain ndarray.
    np.savez_compressed(out_dir / WEIGHTS, **arrays)  # type: ignore[arg-type]
    (out_dir / VOCAB).write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    manifest = {"version": version, "model": model, **extra}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), "utf-8")
    return manifest


def load(art_dir: Path) -> tuple[LinearArtifact, dict[str, Any]]:
    """Read an artifact with `allow_pickle=False` and check its content matches its version."""
    manifest = json.loads((art_dir / MANIFEST).read_text("utf-8"))
    model = manifest["model"]
    if model.get("format") != FORMAT:
        raise ValueError(f"{art_dir}: unsupported artifact format {model.get('format')!r}")
    vocab = json.loads((art_dir / VOCAB).read_text("utf-8"))
    with np.load(art_dir / WEIGHTS, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in _ARRAYS}
    prefix = manifest["version"].rsplit("-", 1)[0]
    if content_version(model, vocab, arrays, prefix) != manifest["version"]:
        raise ValueError(f"{art_dir}: content does not match manifest version {manifest['version']}")
    fz = Featurizer(
        FeatureConfig(**model["features"]),
        word_vocab={t: i for i, t in enumerate(vocab["word"])},
        char_vocab={t: i for i, t in enumerate(vocab["char"])},
        word_idf=arrays["word_idf"],
        char_idf=arrays["char_idf"],
    )
    art = LinearArtifact(
        featurizer=fz,
        labels=list(model["labels"]),
        weights=np.ascontiguousarray(arrays["w_q"] * arrays["w_scale"][None, :], np.float32),
        bias=arrays["bias"],
        temperature=float(model["calibration"]["temperature"]),
        iso_x=arrays["iso_x"],
        iso_y=arrays["iso_y"],
        oos_threshold=float(model["oos"]["threshold"]),
    )
    return art, manifest
