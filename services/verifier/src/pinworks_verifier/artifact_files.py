"""Reading the verifier's scorer artifacts: ``<name>.json`` (manifest) + ``<name>.npz`` (arrays)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np


def read_artifact(name: str, directory: Path | None, expected_format: str
                  ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The manifest and arrays of one artifact; ``None`` means the artifacts in this package.
    Refuses an artifact of another format."""
    if directory is None:
        folder = resources.files("pinworks_verifier").joinpath("artifacts")
        meta_text = folder.joinpath(f"{name}.json").read_text()
        with folder.joinpath(f"{name}.npz").open("rb") as handle:
            arrays = dict(np.load(handle))
    else:
        meta_text = (Path(directory) / f"{name}.json").read_text()
        with np.load(Path(directory) / f"{name}.npz") as data:
            arrays = dict(data)
    meta = json.loads(meta_text)
    if meta.get("format") != expected_format:
        raise ValueError(f"{name}: unknown artifact format {meta.get('format')!r}")
    return meta, arrays


def dense_mass(arrays: dict[str, np.ndarray], labels: int, features: int,
               dtype: type[np.floating[Any]] = np.float32) -> np.ndarray:
    """The labels x features mass matrix stored sparsely as ``rows``/``cols``/``mass``."""
    mass = np.zeros((labels, features), dtype)
    mass[arrays["rows"].astype(np.int64), arrays["cols"].astype(np.int64)] = arrays["mass"]
    return mass
