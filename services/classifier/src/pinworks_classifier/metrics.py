"""The classifier's metrics: confidence and out-of-scope rate per business unit, and drift of
the live confidence and intent distributions from the training-time ones.

Drift is the population stability index (PSI) over a rolling day (24 hourly buckets) of
in-scope classifications, against two references the shipped model carries:
- confidence: the out-of-fold confidence histogram of the training set's cross-validation
  (`metrics.banking77_cv.calibration.bins` in the artifact's manifest);
- intent: the label counts of the training set (`drift_reference.json`, written by
  `tools/drift_reference.py` from the CSV whose sha256 the manifest records).
PSI above 0.1 is a shift worth a look, above 0.25 a major one (the alert's threshold).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import resources
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pinworks_common.metrics import after_commit, business_unit_label
from pinworks_contracts.messages import Classification

log = logging.getLogger("pinworks.classifier.metrics")

CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 1.0)
WINDOW_HOURS = 24
PSI_FLOOR = 1e-4
"""Share given to an empty bin on either side, so PSI stays finite."""

CONFIDENCE = Histogram(
    "pinworks_classifier_confidence",
    "Calibrated confidence of each classification, by business unit.",
    ["business_unit"], buckets=CONFIDENCE_BUCKETS,
)
CLASSIFIED = Counter(
    "pinworks_classifier_classified_total",
    "Tickets classified, by business unit and out-of-scope flag (the out-of-scope rate is "
    "out_of_scope=\"true\" over all).",
    ["business_unit", "out_of_scope"],
)
REJECTED = Counter(
    "pinworks_classifier_rejected_total", "Submissions rejected as malformed (a rejected outcome)."
)


def psi(reference: Sequence[float], counts: Sequence[int]) -> float:
    """Population stability index of observed `counts` against `reference` shares."""
    total = sum(counts)
    if total == 0:
        return 0.0
    ref_total = sum(reference)
    value = 0.0
    for expected_raw, observed in zip(reference, counts, strict=True):
        expected = max(expected_raw / ref_total, PSI_FLOOR)
        actual = max(observed / total, PSI_FLOOR)
        value += (actual - expected) * math.log(actual / expected)
    return value


class RollingHistogram:
    """Counts per category over the last `hours` hours, in hourly buckets."""

    def __init__(self, categories: int, hours: int = WINDOW_HOURS,
                 clock: Callable[[], float] = time.time) -> None:
        self.categories = categories
        self.hours = hours
        self.clock = clock
        self._buckets: dict[int, list[int]] = {}

    def add(self, index: int) -> None:
        hour = int(self.clock() // 3600)
        self._buckets.setdefault(hour, [0] * self.categories)[index] += 1

    def counts(self) -> list[int]:
        oldest = int(self.clock() // 3600) - self.hours + 1
        for hour in [h for h in self._buckets if h < oldest]:
            del self._buckets[hour]
        totals = [0] * self.categories
        for bucket in self._buckets.values():
            for index, count in enumerate(bucket):
                totals[index] += count
        return totals


class DriftMonitor:
    """Live in-scope confidence and intent distributions against the training-time ones."""

    def __init__(self, confidence_edges: Sequence[float], confidence_reference: Sequence[float],
                 intent_reference: dict[str, float] | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.edges = list(confidence_edges)
        self.confidence_reference = list(confidence_reference)
        self.confidence = RollingHistogram(len(self.confidence_reference), clock=clock)
        self.intents = sorted(intent_reference) if intent_reference else []
        self.intent_reference = [intent_reference[i] for i in self.intents] if intent_reference \
            else []
        self._intent_index = {intent: n for n, intent in enumerate(self.intents)}
        # one extra bin for intents the training set never had
        self.intent_counts = RollingHistogram(len(self.intents) + 1, clock=clock)

    def observe(self, classification: Classification) -> None:
        if classification.out_of_scope:
            return
        self.confidence.add(self._confidence_bin(classification.confidence))
        if self.intents:
            self.intent_counts.add(self._intent_index.get(classification.intent,
                                                          len(self.intents)))

    def _confidence_bin(self, confidence: float) -> int:
        for index, upper in enumerate(self.edges[1:]):
            if confidence <= upper:
                return index
        return len(self.confidence_reference) - 1

    def figures(self) -> dict[str, tuple[float, int]]:
        """distribution -> (PSI over the window, samples in the window)."""
        confidence = self.confidence.counts()
        figures = {"confidence": (psi(self.confidence_reference, confidence), sum(confidence))}
        if self.intents:
            counts = self.intent_counts.counts()
            figures["intent"] = (psi([*self.intent_reference, 0.0], counts), sum(counts))
        return figures

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any],
                      intent_reference: dict[str, Any] | None = None,
                      clock: Callable[[], float] = time.time) -> DriftMonitor | None:
        """The monitor for a model's manifest, or None if the manifest has no confidence
        histogram; the intent reference is used only if it describes the manifest's data."""
        try:
            bins = manifest["metrics"]["banking77_cv"]["calibration"]["bins"]
        except (KeyError, TypeError):
            log.warning("the model's manifest has no out-of-fold confidence histogram: no drift")
            return None
        edges = [float(bins[0]["lo"]), *(float(b["hi"]) for b in bins)]
        reference = [float(b["n"]) for b in bins]
        intents = None
        if intent_reference is not None:
            trained_on = manifest.get("training_data", {}).get("sha256", {})
            if trained_on.get(intent_reference.get("source")) == intent_reference.get("sha256"):
                intents = {k: float(v) for k, v in intent_reference["intents"].items()}
            else:
                log.warning("drift_reference.json describes other training data than the model "
                            "(rerun tools/drift_reference.py): no intent drift")
        return cls(edges, reference, intents, clock=clock)


def shipped_intent_reference() -> dict[str, Any]:
    text = resources.files("pinworks_classifier").joinpath("drift_reference.json").read_text()
    reference: dict[str, Any] = json.loads(text)
    return reference


class DriftCollector(Collector):
    """Exports the current monitor's PSI at scrape time (registered once per process)."""

    def __init__(self) -> None:
        self.monitor: DriftMonitor | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        psi_family = GaugeMetricFamily(
            "pinworks_classifier_drift_psi",
            "Population stability index of the last 24 h of in-scope classifications against "
            "the training-time distribution.", labels=["distribution"])
        samples = GaugeMetricFamily(
            "pinworks_classifier_drift_samples",
            "In-scope classifications in the drift window.", labels=["distribution"])
        if self.monitor is not None:
            for distribution, (value, count) in self.monitor.figures().items():
                psi_family.add_metric([distribution], value)
                samples.add_metric([distribution], count)
        yield psi_family
        yield samples


DRIFT = DriftCollector()
REGISTRY.register(DRIFT)


def observe_classifications(items: Iterable[tuple[str | None, Classification]]) -> None:
    """(business unit, classification) of newly recorded classifications, counted on commit."""
    recorded = list(items)

    def observe() -> None:
        for unit, classification in recorded:
            label = business_unit_label(unit)
            CONFIDENCE.labels(label).observe(classification.confidence)
            CLASSIFIED.labels(label, str(classification.out_of_scope).lower()).inc()
            if DRIFT.monitor is not None:
                DRIFT.monitor.observe(classification)

    after_commit(observe)


def observe_rejections(count: int) -> None:
    if count:
        after_commit(lambda: REJECTED.inc(count))
