"""Write the intent distribution the shipped classifier was trained on
(`pinworks_classifier/drift_reference.json`), the reference of the live intent-drift metric.

The artifact's manifest keeps the out-of-fold confidence histogram (the confidence reference) but
not the label counts, so they are taken once from the training CSV the manifest names, with its
sha256: the service compares that hash with the manifest's and reports no intent drift against a
reference of other data. Rerun after retraining on other data:

    .venv/bin/python services/classifier/tools/drift_reference.py
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "banking77" / "train.csv"
OUT = ROOT / "src" / "pinworks_classifier" / "drift_reference.json"
KEY = "banking77/train.csv"


def main() -> None:
    with TRAIN.open(newline="", encoding="utf-8") as handle:
        counts = Counter(row["category"] for row in csv.DictReader(handle))
    reference = {
        "source": KEY,
        "sha256": hashlib.sha256(TRAIN.read_bytes()).hexdigest(),
        "intents": dict(sorted(counts.items())),
    }
    OUT.write_text(json.dumps(reference, indent=1) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(counts)} intents over {sum(counts.values())} rows")


if __name__ == "__main__":
    main()
