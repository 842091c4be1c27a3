"""Shared by the build scripts: where the project's data is and how BANKING77 is split.

The BANKING77 copy (`services/classifier/data/banking77/train.csv`) is split by a hash of each
text, so the split is stable and needs no stored list: 70% trains the verifier's intent scorer,
15% calibrates its thresholds, and 15% (never seen by either) becomes the labelled evaluation
set. These scripts are development tools run from the workspace; the service never runs them.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from pinworks_specialists.kb.index import parse_article

ROOT = Path(__file__).resolve().parents[3]
BANKING77 = ROOT / "services/classifier/data/banking77/train.csv"
TEMPLATES = ROOT / "services/specialists/src/pinworks_specialists/templates/intents.yaml"
ARTICLES = ROOT / "services/specialists/src/pinworks_specialists/kb/articles"
ARTIFACTS = ROOT / "services/verifier/src/pinworks_verifier/artifacts"
EVAL_DIR = ROOT / "services/verifier/eval"

# The router sends these to a person, so no automated draft for them reaches the verifier.
SECURITY_INTENTS = frozenset({
    "compromised_card", "lost_or_stolen_card", "lost_or_stolen_phone",
    "card_payment_not_recognised", "cash_withdrawal_not_recognised",
    "direct_debit_payment_not_recognised", "transaction_charged_twice",
})


def split_of(text: str) -> str:
    bucket = int(hashlib.sha256(text.strip().lower().encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < 70 else "calibration" if bucket < 85 else "test"


def banking77() -> Iterator[tuple[str, str, str]]:
    """(text, intent, split) for every BANKING77 training query."""
    with BANKING77.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            yield row["text"], row["category"], split_of(row["text"])


def template_entries() -> dict[str, Any]:
    data = yaml.safe_load(TEMPLATES.read_text(encoding="utf-8"))
    return dict(data["intents"])


def bare_template(entry: dict[str, Any]) -> str:
    """A template's text with no ticket variables (the `otherwise` fallbacks)."""
    parts = []
    for part in entry["parts"]:
        if part.get("when"):
            if part.get("otherwise"):
                parts.append(" ".join(str(part["otherwise"]).split()))
            continue
        parts.append(" ".join(str(part["text"]).split()))
    return "\n\n".join(parts)


def articles() -> list[dict[str, Any]]:
    """Every help-centre article: id, title, intents and paragraphs (headings folded in), as
    the specialists' knowledge base parses them."""
    result = []
    for path in sorted(ARTICLES.glob("*.md")):
        article = parse_article(path.name, path.read_text(encoding="utf-8"))
        result.append({"id": article.article_id, "title": article.title, "intents": list(article.intents),
                       "paragraphs": list(article.paragraphs)})
    return result
