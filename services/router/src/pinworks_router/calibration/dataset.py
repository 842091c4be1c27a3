"""The calibration set: classifier predictions on tickets the classifier never trained on.

`services/classifier/data/calibration/predictions.csv` (written by
`services/classifier/tools/calibration_set.py`, which says how) holds one row per ticket:
source, row in that source, true label, predicted intent, confidence, out-of-scope flag. The
texts are not copied: they are read from the classifier's data folder (BANKING77 train,
CLINC150 val/oos_val; licences and attribution in that folder) so the rules that read the
ticket's words (patterns, customer state) decide as they would on the real ticket.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pinworks_contracts.messages import Classification, TicketSubmission

OUT_OF_SCOPE = "oos"
PREDICTIONS = Path("calibration") / "predictions.csv"
SOURCES = {"banking77_train": None, "clinc150_val": "val", "clinc150_oos_val": "oos_val"}


@dataclass(frozen=True)
class CalibrationTicket:
    ticket: TicketSubmission
    classification: Classification
    label: str
    """The true intent, or `oos` for a ticket a bank's desk does not handle."""
    source: str

    @property
    def in_scope(self) -> bool:
        return self.label != OUT_OF_SCOPE

    @property
    def intent_wrong(self) -> bool:
        """An automatic answer to this ticket would be wrong: out of scope, or another intent."""
        return not self.in_scope or self.classification.intent != self.label


def default_data_dir() -> Path | None:
    """The classifier's data folder of a source checkout, when there is one."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "services" / "classifier" / "data"
        if (candidate / PREDICTIONS).is_file():
            return candidate
    return None


def _texts(data_dir: Path) -> dict[str, list[str]]:
    with (data_dir / "banking77" / "train.csv").open(newline="", encoding="utf-8") as fh:
        texts = {"banking77_train": [row["text"] for row in csv.DictReader(fh)]}
    clinc = json.loads((data_dir / "clinc150" / "data.json").read_text("utf-8"))
    for source, split in SOURCES.items():
        if split is not None:
            texts[source] = [text for text, _intent in clinc.get(split, [])]
    return texts


def predictions_sha256(data_dir: Path) -> str:
    return hashlib.sha256((data_dir / PREDICTIONS).read_bytes()).hexdigest()


def load_calibration_set(data_dir: Path, business_unit: str = "calibration",
                         model_version: str = "calibration-set") -> list[CalibrationTicket]:
    """Every row of the predictions file joined with its ticket text."""
    texts = _texts(data_dir)
    out: list[CalibrationTicket] = []
    with (data_dir / PREDICTIONS).open(newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            source = row["source"]
            if source not in texts:
                raise ValueError(f"{data_dir / PREDICTIONS} line {line}: unknown source {source!r}")
            ticket = TicketSubmission(ticket_id=f"{source}-{row['row']}", business_unit=business_unit,
                                      body=texts[source][int(row["row"])])
            classification = Classification(
                intent=row["intent"], confidence=float(row["confidence"]), alternatives=[],
                out_of_scope=row["out_of_scope"] == "1", model_version=model_version)
            out.append(CalibrationTicket(ticket, classification, row["label"], source))
    return out
