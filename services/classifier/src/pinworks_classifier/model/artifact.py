"""Safe on-disk format of a trained model: JSON + `.npz` (no pickle anywhere).

Layout of an artifact directory:
- `manifest.json`: labels, feature config, calibration, OOS rule, metrics, provenance, version.
- `vocab.json`: the word and char n-gram vocabularies (terms in column order).
- `weights.npz`: int8 weights with per-class scales, bias, IDF vectors, calibration map.
- `head.npz` (cascade format only): the MLP over sentence embeddings and its calibration map.
  The sentence encoder itself is named and hashed in the manifest; it is read from
  `encoder/` inside the artifact when present, else from the one shipped in the package.
- `neighbours.npz` (format /2 of the cascade): the training texts' sentence embeddings (int8,
  one scale per row) with their labels, the memory the nearest-neighbour vote reads, and the
  coefficients of the escalated tickets' confidence model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .encoder import encoder_sha256, has_encoder, shipped_encoder_dir
from .features import FeatureConfig, Featurizer
from .memory_index import MemoryIndex

MANIFEST = "manifest.json"
VOCAB = "vocab.json"
WEIGHTS = "weights.npz"
HEAD = "head.npz"
FORMAT = "pinworks-intent-linear/1"
CASCADE_FORMAT = "pinworks-intent-cascade/1"
NEIGHBOURS = "neighbours.npz"
# What the escalation cut is compared with: the linear stage's temperature-scaled top
# probability (ranks every ticket), or (artifacts before it) its isotonic-mapped one, whose
# plateaus tie many tickets so a cut cannot fall between them.
ESCALATE_ON_TEMPERATURE = "temperature-scaled"
ESCALATE_ON_CALIBRATED = "calibrated"
NEIGHBOUR_FORMAT = "pinworks-intent-cascade/2"
_ARRAYS = ("w_q", "w_scale", "bias", "word_idf", "char_idf", "iso_x", "iso_y")
_HEAD_ARRAYS = ("h_w1", "h_b1", "h_w2", "h_b2", "h_iso_x", "h_iso_y")
_NEIGHBOUR_ARRAYS = ("m_emb_q", "m_emb_scale", "m_labels", "m_coef")


@dataclass
class NeighbourMemory:
    """The training examples the second stage compares a ticket with, and the weight of their
    vote in the blend."""

    embeddings: np.ndarray  # (n, dim) float32 unit vectors
    labels: np.ndarray  # (n,) label columns
    k: int
    temperature: float  # of the exponential weights of the k cosine similarities
    background: float  # similarity of the k abstaining votes (core.neighbour_votes)
    weight: float  # of the log-vote in the blend
    floor: float  # added to the vote before the log
    index: MemoryIndex | None = None  # exact pre-filter over the int8 rows (loaded artifacts)


@dataclass
class ConfidenceModel:
    """Logistic regression turning an escalated ticket's confidence features into the
    probability that its answer is right (before the head's isotonic map)."""

    coef: np.ndarray  # (n_features,) over core.confidence_features
    intercept: float

    def probability(self, features: np.ndarray) -> np.ndarray:
        z = np.clip(features @ self.coef.astype(np.float64) + self.intercept, -50.0, 50.0)
        return np.asarray(1.0 / (1.0 + np.exp(-z)))


@dataclass
class EmbeddingHead:
    """Second stage of the cascade: an MLP (or a softmax layer) over sentence embeddings,
    blended with the linear scores for the tickets the linear model is unsure of, with a
    calibration of its own."""

    encoder: str  # name of the encoder directory
    encoder_sha256: str
    input_scale: float
    w1: np.ndarray  # (dim, hidden); hidden 0: no hidden layer, w2 is (dim, n_labels)
    b1: np.ndarray
    w2: np.ndarray  # (hidden or dim, n_labels), columns in `labels` order
    b2: np.ndarray
    blend: dict[str, float]  # linear_mean/std, head_mean/std (z-scores), head_weight
    escalate_below: float  # linear confidence under which a ticket takes the second stage
    escalate_oos_at: float  # linear P(oos) at or above which it does too
    temperature: float
    iso_x: np.ndarray
    iso_y: np.ndarray  # with `neighbours`, the map of the confidence model's probability
    oos_threshold: float
    neighbours: NeighbourMemory | None = None  # with `confidence`, or neither
    confidence: ConfidenceModel | None = None
    escalate_on: str = ESCALATE_ON_CALIBRATED


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
    head: EmbeddingHead | None = None


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


def _head_arrays(head: EmbeddingHead) -> dict[str, np.ndarray]:
    return {
        "h_w1": head.w1.astype(np.float32),
        "h_b1": head.b1.astype(np.float32),
        "h_w2": head.w2.astype(np.float32),
        "h_b2": head.b2.astype(np.float32),
        "h_iso_x": head.iso_x.astype(np.float32),
        "h_iso_y": head.iso_y.astype(np.float32),
    }


def quantize_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per row (an embedding's largest component)."""
    scale = np.abs(rows).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.ascontiguousarray(np.clip(np.rint(rows / scale[:, None]), -127, 127), dtype=np.int8)
    return q, scale.astype(np.float32)


def dequantize_rows(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(q.astype(np.float32) * scale[:, None])


def _neighbour_arrays(memory: NeighbourMemory, confidence: ConfidenceModel) -> dict[str, np.ndarray]:
    q, scale = quantize_rows(memory.embeddings)
    return {
        "m_emb_q": q,
        "m_emb_scale": scale,
        "m_labels": memory.labels.astype(np.int16),
        "m_coef": confidence.coef.astype(np.float32),
    }


def _model_section(art: LinearArtifact) -> dict[str, Any]:
    model: dict[str, Any] = {
        "format": FORMAT if art.head is None else CASCADE_FORMAT,
        "labels": art.labels,
        "features": asdict(art.featurizer.config),
        "calibration": {"method": "temperature+isotonic", "temperature": art.temperature},
        "oos": {"rule": "p_oos >= threshold", "threshold": art.oos_threshold},
    }
    if art.head is not None:
        h = art.head
        model["cascade"] = {
            "encoder": {"name": h.encoder, "sha256": h.encoder_sha256},
            "input_scale": h.input_scale,
            "hidden": int(h.w1.shape[1]),
            "blend": h.blend,
            "escalate": {
                "below_confidence": h.escalate_below,
                "at_p_oos": h.escalate_oos_at,
                "confidence": h.escalate_on,
            },
            "calibration": {"method": "temperature+isotonic", "temperature": h.temperature},
            "oos": {"rule": "blended p_oos >= threshold", "threshold": h.oos_threshold},
        }
        m = h.neighbours
        if m is not None and h.confidence is not None:
            model["format"] = NEIGHBOUR_FORMAT
            model["cascade"]["neighbours"] = {
                "rows": int(len(m.labels)),
                "k": m.k,
                "temperature": m.temperature,
                "background_similarity": m.background,
                "vote_weight": m.weight,
                "vote_floor": m.floor,
                "confidence": "logistic regression over the confidence features, then isotonic",
                "intercept": h.confidence.intercept,
            }
    return model


def resolve_encoder_dir(art_dir: Path, name: str) -> Path:
    """An encoder bundled in the artifact wins over the one shipped in the package."""
    bundled = art_dir / "encoder"
    return bundled if has_encoder(bundled) else shipped_encoder_dir(name)


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
    if art.head is not None:
        arrays.update(_head_arrays(art.head))
        if art.head.neighbours is not None and art.head.confidence is not None:
            arrays.update(_neighbour_arrays(art.head.neighbours, art.head.confidence))
    vocab = {
        "word": sorted(art.featurizer.word_vocab, key=art.featurizer.word_vocab.__getitem__),
        "char": sorted(art.featurizer.char_vocab, key=art.featurizer.char_vocab.__getitem__),
    }
    model = _model_section(art)
    version = content_version(model, vocab, arrays, prefix)
    # numpy's stubs mistake **arrays for its keyword options; every value is a plain ndarray.
    linear = {k: v for k, v in arrays.items() if k in _ARRAYS}
    np.savez_compressed(out_dir / WEIGHTS, **linear)  # type: ignore[arg-type]
    if art.head is not None:
        head = {k: v for k, v in arrays.items() if k in _HEAD_ARRAYS}
        np.savez_compressed(out_dir / HEAD, **head)  # type: ignore[arg-type]
    if any(k in arrays for k in _NEIGHBOUR_ARRAYS):
        memory = {k: v for k, v in arrays.items() if k in _NEIGHBOUR_ARRAYS}
        np.savez_compressed(out_dir / NEIGHBOURS, **memory)  # type: ignore[arg-type]
    (out_dir / VOCAB).write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    manifest = {"version": version, "model": model, **extra}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), "utf-8")
    return manifest


def load(art_dir: Path) -> tuple[LinearArtifact, dict[str, Any]]:
    """Read an artifact with `allow_pickle=False` and check its content matches its version."""
    manifest = json.loads((art_dir / MANIFEST).read_text("utf-8"))
    model = manifest["model"]
    if model.get("format") not in (FORMAT, CASCADE_FORMAT, NEIGHBOUR_FORMAT):
        raise ValueError(f"{art_dir}: unsupported artifact format {model.get('format')!r}")
    vocab = json.loads((art_dir / VOCAB).read_text("utf-8"))
    with np.load(art_dir / WEIGHTS, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in _ARRAYS}
    cascade = model["format"] in (CASCADE_FORMAT, NEIGHBOUR_FORMAT)
    if cascade:
        with np.load(art_dir / HEAD, allow_pickle=False) as npz:
            arrays.update({k: npz[k] for k in _HEAD_ARRAYS})
    if model["format"] == NEIGHBOUR_FORMAT:
        with np.load(art_dir / NEIGHBOURS, allow_pickle=False) as npz:
            arrays.update({k: npz[k] for k in _NEIGHBOUR_ARRAYS})
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
        head=_load_head(art_dir, model, arrays) if cascade else None,
    )
    return art, manifest


def _load_head(art_dir: Path, model: dict[str, Any], arrays: dict[str, np.ndarray]) -> EmbeddingHead:
    c = model["cascade"]
    name, sha = c["encoder"]["name"], c["encoder"]["sha256"]
    encoder_dir = resolve_encoder_dir(art_dir, name)
    if not has_encoder(encoder_dir):
        raise ValueError(f"{art_dir}: encoder {name} is neither bundled in encoder/ nor shipped")
    found = encoder_sha256(encoder_dir)
    if found != sha:
        raise ValueError(
            f"{art_dir}: encoder {name} has sha256 {found[:12]}..., the head was trained on {sha[:12]}..."
        )
    return EmbeddingHead(
        encoder=name,
        encoder_sha256=sha,
        input_scale=float(c["input_scale"]),
        w1=arrays["h_w1"],
        b1=arrays["h_b1"],
        w2=arrays["h_w2"],
        b2=arrays["h_b2"],
        blend={k: float(v) for k, v in c["blend"].items()},
        escalate_below=float(c["escalate"]["below_confidence"]),
        escalate_oos_at=float(c["escalate"]["at_p_oos"]),
        escalate_on=str(c["escalate"].get("confidence", ESCALATE_ON_CALIBRATED)),
        temperature=float(c["calibration"]["temperature"]),
        iso_x=arrays["h_iso_x"],
        iso_y=arrays["h_iso_y"],
        oos_threshold=float(c["oos"]["threshold"]),
        neighbours=_load_neighbours(c["neighbours"], arrays) if "neighbours" in c else None,
        confidence=_load_confidence(c["neighbours"], arrays) if "neighbours" in c else None,
    )


def _load_confidence(section: dict[str, Any], arrays: dict[str, np.ndarray]) -> ConfidenceModel:
    return ConfidenceModel(arrays["m_coef"].astype(np.float64), float(section["intercept"]))


def _load_neighbours(section: dict[str, Any], arrays: dict[str, np.ndarray]) -> NeighbourMemory:
    embeddings = dequantize_rows(arrays["m_emb_q"], arrays["m_emb_scale"])
    return NeighbourMemory(
        embeddings=embeddings,
        labels=arrays["m_labels"].astype(np.int64),
        k=int(section["k"]),
        temperature=float(section["temperature"]),
        background=float(section["background_similarity"]),
        weight=float(section["vote_weight"]),
        floor=float(section["vote_floor"]),
        index=MemoryIndex(arrays["m_emb_q"], arrays["m_emb_scale"], embeddings),
    )
