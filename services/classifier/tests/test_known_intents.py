"""The intent list agents pick from (libs/common) is exactly what the shipped classifier emits."""

from __future__ import annotations

import json
from pathlib import Path

from pinworks_contracts.intents import known_intents

MANIFEST = (Path(__file__).resolve().parents[1] / "src" / "pinworks_classifier" / "artifacts"
            / "current" / "manifest.json")


def test_the_common_intent_list_is_the_shipped_artifacts_labels() -> None:
    labels = json.loads(MANIFEST.read_text("utf-8"))["model"]["labels"]
    assert list(known_intents()) == [label for label in labels if label != "oos"]
