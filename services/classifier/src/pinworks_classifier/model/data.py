"""Loading the copied BANKING77 / CLINC150 training data (never the public test splits)."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

OOS_LABEL = "oos"

# CLINC150 intents that a bank's support desk does handle (its "banking" and "credit_cards"
# domains) or that overlap BANKING77 intents. They are neither in-scope training data (their
# label set differs from BANKING77) nor negatives, so they are left out entirely.
CLINC_BANKING_INTENTS: frozenset[str] = frozenset(
    {
        # banking domain
        "transfer", "transactions", "balance", "freeze_account", "pay_bill", "bill_balance",
        "bill_due", "interest_rate", "routing", "min_payment", "order_checks", "pin_change",
        "report_fraud", "account_blocked", "spending_history",
        # credit_cards domain
        "credit_score", "report_lost_card", "credit_limit", "rewards_balance", "new_card",
        "application_status", "card_declined", "international_fees", "apr", "redeem_rewards",
        "credit_limit_change", "damaged_card", "replacement_card_duration",
        "improve_credit_score", "expiration_date",
        # other domains, but a bank desk answers them (exchange rates, travel notices,
        # deposits and 401k transfers) or they are ambiguous in a ticket ("cancel that")
        "exchange_rate", "travel_notification", "direct_deposit", "rollover_401k", "cancel",
    }
)  # fmt: skip


@dataclass
class Dataset:
    """Texts with labels; label `oos` marks out-of-scope. `group` names the source subset."""

    texts: list[str]
    labels: list[str]
    groups: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def default_data_dir() -> Path:
    """`services/classifier/data` of a source checkout (the package itself ships no data)."""
    return Path(__file__).resolve().parents[3] / "data"


def read_labelled_csv(path: Path) -> tuple[list[str], list[str]]:
    """A `text,category` CSV as two lists."""
    texts: list[str] = []
    labels: list[str] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns text,category, got {reader.fieldnames}")
        for row in reader:
            texts.append(row["text"])
            labels.append(row["category"].strip())
    return texts, labels


def load_intents(data_dir: Path) -> list[str]:
    """The 77 BANKING77 intents in their published order."""
    return list(json.loads((data_dir / "banking77" / "categories.json").read_text("utf-8")))


def _clinc_oos(pairs: list[list[str]], group: str) -> Dataset:
    texts, labels, groups = [], [], []
    for text, intent in pairs:
        if intent in CLINC_BANKING_INTENTS:
            continue
        texts.append(text)
        labels.append(OOS_LABEL)
        groups.append(f"{group}:{intent}")
    return Dataset(texts, labels, groups)


def load_training_data(data_dir: Path) -> tuple[Dataset, Dataset]:
    """(train, dev): train = BANKING77 train + CLINC150 non-banking train/oos_train;
    dev = CLINC150 non-banking val + oos_val, used only to measure out-of-scope detection."""
    texts, labels = read_labelled_csv(data_dir / "banking77" / "train.csv")
    train = Dataset(texts, labels, ["banking77"] * len(texts))
    clinc = json.loads((data_dir / "clinc150" / "data.json").read_text("utf-8"))
    for split in ("train", "oos_train"):
        part = _clinc_oos(clinc.get(split, []), f"clinc_{split}")
        train.texts += part.texts
        train.labels += part.labels
        train.groups += part.groups
    dev = Dataset([], [], [])
    for split in ("val", "oos_val"):
        part = _clinc_oos(clinc.get(split, []), f"clinc_{split}")
        dev.texts += part.texts
        dev.labels += part.labels
        dev.groups += part.groups
    return train, dev


def data_sha256(data_dir: Path) -> dict[str, str]:
    """SHA-256 of every training file, recorded in the manifest for provenance."""
    files = ["banking77/train.csv", "banking77/categories.json", "clinc150/data.json"]
    return {
        f: hashlib.sha256((data_dir / f).read_bytes()).hexdigest() for f in files if (data_dir / f).exists()
    }
