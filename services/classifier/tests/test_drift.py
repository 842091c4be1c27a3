import copy
import json
from pathlib import Path

import pytest

from pinworks_classifier.metrics import (
    DriftMonitor,
    RollingHistogram,
    psi,
    shipped_intent_reference,
)
from pinworks_contracts.messages import Classification

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "pinworks_classifier" / "artifacts" / \
    "current" / "manifest.json"


def classification(intent: str, confidence: float, out_of_scope: bool = False) -> Classification:
    return Classification(intent=intent, confidence=confidence, out_of_scope=out_of_scope,
                          model_version="m", alternatives=[])


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift() -> None:
    assert psi([1, 2, 1], [10, 20, 10]) == pytest.approx(0.0)
    small, large = psi([1, 1], [55, 45]), psi([1, 1], [90, 10])
    assert 0 < small < 0.1 < 0.25 < large
    # by hand: (0.9-0.5)ln(0.9/0.5) + (0.1-0.5)ln(0.1/0.5)
    assert large == pytest.approx(0.4 * 0.5877867 + 0.4 * 1.6094379, rel=1e-6)


def test_the_window_forgets_what_is_older_than_a_day() -> None:
    now = [0.0]
    window = RollingHistogram(2, hours=24, clock=lambda: now[0])
    window.add(0)
    now[0] = 23 * 3600
    window.add(1)
    assert window.counts() == [1, 1]
    now[0] = 24 * 3600
    assert window.counts() == [0, 1]


def test_the_shipped_model_references_its_training_distributions() -> None:
    manifest = json.loads(MANIFEST.read_text())
    monitor = DriftMonitor.from_manifest(manifest, shipped_intent_reference())
    assert monitor is not None
    assert len(monitor.intents) == 77
    bins = manifest["metrics"]["banking77_cv"]["calibration"]["bins"]
    assert sum(monitor.confidence_reference) == sum(b["n"] for b in bins) == 10003
    # traffic like the training set: intents in their training shares, confidences drawn
    # from the out-of-fold histogram -> no drift
    for intent, share in zip(monitor.intents, monitor.intent_reference, strict=True):
        for _ in range(int(share)):
            monitor.observe(classification(intent, 0.999))
    for lo, hi, n in ((b["lo"], b["hi"], b["n"]) for b in bins):
        for _ in range(n):
            monitor.confidence.add(monitor._confidence_bin((lo + hi) / 2))
    figures = monitor.figures()
    assert figures["intent"][0] == pytest.approx(0.0, abs=1e-9)
    assert figures["intent"][1] == 10003
    # one intent only, all at low confidence -> a major shift on both
    shifted = DriftMonitor.from_manifest(manifest, shipped_intent_reference())
    assert shifted is not None
    for _ in range(200):
        shifted.observe(classification("card_arrival", 0.35))
        shifted.observe(classification("oos", 0.2, out_of_scope=True))  # not in-scope: ignored
    psi_confidence, samples = shifted.figures()["confidence"]
    assert samples == 200 and psi_confidence > 0.25
    assert shifted.figures()["intent"][0] > 0.25


def test_an_intent_reference_of_other_training_data_is_not_used() -> None:
    manifest = json.loads(MANIFEST.read_text())
    other = copy.deepcopy(shipped_intent_reference())
    other["sha256"] = "0" * 64
    monitor = DriftMonitor.from_manifest(manifest, other)
    assert monitor is not None and "intent" not in monitor.figures()
    assert DriftMonitor.from_manifest({"version": "x"}, other) is None
