"""The verifier's metrics: verdicts per handler, failures per check, and how often a
specialist's own reading of the intent disagrees with the classifier's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter

from pinworks_common.metrics import after_commit
from pinworks_verifier.checks import DisagreementCheck

DISAGREEMENT_CHECK = DisagreementCheck.name

VERDICTS = Counter(
    "pinworks_verifier_verdicts_total", "Drafts verified, by handler and verdict.",
    ["handler", "verdict"],
)
CHECK_FAILURES = Counter(
    "pinworks_verifier_check_failures_total", "Drafts a check failed, by check and handler.",
    ["check", "handler"],
)
INTENT_READINGS = Counter(
    "pinworks_specialist_intent_readings_total",
    "Drafts whose specialist gave its own reading of the intent (the disagreement check's "
    "denominator), by handler.", ["handler"],
)
DISAGREEMENTS = Counter(
    "pinworks_specialist_disagreements_total",
    "Drafts whose specialist read another intent than the classifier, by handler.", ["handler"],
)


def observe_verdicts(rows: Iterable[Mapping[str, Any]]) -> None:
    """Count newly recorded verifier decisions once their batch commits."""
    seen = []
    for row in rows:
        output = row["output"]
        handler = str(row["inputs"].get("handler"))
        checks = [(str(c["check"]), bool(c["passed"]), c.get("details") or {})
                  for c in output.get("checks", [])]
        seen.append((handler, bool(output.get("passed")), checks))

    def observe() -> None:
        for handler, passed, checks in seen:
            VERDICTS.labels(handler, "passed" if passed else "failed").inc()
            for check, check_passed, details in checks:
                if not check_passed:
                    CHECK_FAILURES.labels(check, handler).inc()
                if check == DISAGREEMENT_CHECK and details.get("applies", True):
                    INTENT_READINGS.labels(handler).inc()
                    if not check_passed:
                        DISAGREEMENTS.labels(handler).inc()

    after_commit(observe)
