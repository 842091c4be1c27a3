"""A synthetic calibration set with a known error rate, laid out like the classifier's data
folder, so the calibration can be checked where the truth is known (tests, demonstrations).

Confidence is uniform on [0, 1]; an in-scope ticket is misread with probability
`wrong_at * (1 - confidence)`, so above threshold h the true wrong share of the in-scope
tickets is `wrong_at * (1 - h) / 2`. Out-of-scope tickets are flagged out of scope with
probability `oos_flagged`, with confidence uniform on [0, `oos_max_confidence`].
With `second_opinion=True` it also writes the second reader's gaps (`calibration/
second_opinion.csv`): a right reading agrees (gap 0) with probability 0.9, else its gap is
exponential with mean `RIGHT_GAP`; a wrong one agrees with probability 0.5, else mean `WRONG_GAP`.
So the check at margin m escalates `0.1·exp(−m/RIGHT_GAP)` of the right answers and
`0.5·exp(−m/WRONG_GAP)` of the wrong ones.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from pathlib import Path

from pinworks_router.calibration.dataset import OUT_OF_SCOPE, PREDICTIONS
from pinworks_router.calibration.second_opinion import READINGS

COLUMNS = ["source", "row", "label", "intent", "confidence", "out_of_scope", "fold"]
RIGHT_GAP, WRONG_GAP = 0.5, 2.0
"""Mean gap of a right / wrong reading when the second reader disagrees."""


def synthetic_gap(rng: random.Random, wrong: bool) -> float:
    """A second reading's gap (see the module's docstring)."""
    if rng.random() < (0.5 if wrong else 0.9):
        return 0.0
    return rng.expovariate(1 / (WRONG_GAP if wrong else RIGHT_GAP))


def write_synthetic_set(
    data_dir: Path, intents: Sequence[tuple[str, int]], out_of_scope: int = 0, wrong_at: float = 0.05,
    oos_flagged: float = 0.8, oos_max_confidence: float = 0.6, seed: int = 0,
    second_opinion: bool = False,
) -> None:
    """`intents`: (name, how many tickets); texts are plain sentences naming the intent."""
    rng = random.Random(seed)
    names = [name for name, _n in intents]
    texts: list[tuple[str, str]] = []
    rows: list[list[object]] = []
    for name, count in intents:
        for _ in range(count):
            row = len(texts)
            texts.append((f"I need help with {name.replace('_', ' ')} number {row}", name))
            confidence = rng.random()
            misread = rng.random() < wrong_at * (1 - confidence)
            predicted = rng.choice([n for n in names if n != name]) if misread else name
            rows.append(["banking77_train", row, name, predicted, f"{confidence:.6f}", 0, 0])
    oos_pairs = []
    for index in range(out_of_scope):
        oos_pairs.append([f"what is the weather like on day {index}", "weather"])
        flagged = int(rng.random() < oos_flagged)
        rows.append(["clinc150_oos_val", index, OUT_OF_SCOPE, rng.choice(names),
                     f"{rng.random() * oos_max_confidence:.6f}", flagged, ""])
    (data_dir / "banking77").mkdir(parents=True, exist_ok=True)
    (data_dir / "clinc150").mkdir(parents=True, exist_ok=True)
    (data_dir / PREDICTIONS).parent.mkdir(parents=True, exist_ok=True)
    with (data_dir / "banking77" / "train.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        writer.writerows(texts)
    (data_dir / "clinc150" / "data.json").write_text(
        json.dumps({"val": [], "oos_val": oos_pairs}), "utf-8")
    with (data_dir / PREDICTIONS).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    if second_opinion:
        with (data_dir / READINGS).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["source", "row", "intent", "reader", "best", "gap"])
            for kind, position, truth, read_as, *_rest in rows:
                gap = synthetic_gap(rng, truth != read_as)
                writer.writerow([kind, position, read_as, "all", truth if gap else read_as,
                                 f"{gap:.6f}"])
