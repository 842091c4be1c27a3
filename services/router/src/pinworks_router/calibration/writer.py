"""The calibrated policy: the policy under calibration plus its `human` gate rules.

Per cell (`--method cells`: one gate per certified cell) or per threshold of the scored family
(`--method scored`: the intents that share a threshold share a gate; the intents the learn part
never saw answered automatically share the pooled one). A gate sends a ticket to a person when
its confidence is at or below the certified threshold (`max_confidence` holds at or below), so
tickets above it are answered as the rest of the policy decides. The gates go just before the
first rule that answers automatically: the rules that send tickets to people for other reasons
(out of scope, security, a customer at risk) still come first and keep their audit reasons.
Gates of an earlier calibration are replaced, so calibrating a calibrated policy does not stack
them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from pinworks_router.calibration.cells import POOLED, CellCertificate
from pinworks_router.calibration.scored import FamilyCertificate
from pinworks_router.policy import ErrorBudget

GATE_PREFIX = "error-budget-"


def _reason(cert: CellCertificate) -> str:
    chosen = cert.certification.chosen
    where = "its intents" if cert.cell.name == POOLED else cert.cell.name
    if chosen is None:
        return (f"error budget: no confidence threshold of {where} is certified at "
                f"{cert.cell.max_rate:.2%} wrong at {cert.cell.confidence:.0%} confidence; "
                "a person answers")
    return (f"error budget: confidence at or below {chosen.threshold} for {where}; above it "
            f"the calibration set certifies at most {cert.cell.max_rate:.2%} wrong automatic "
            f"answers at {cert.cell.confidence:.0%} confidence ({chosen.answered} automatic, "
            f"{chosen.wrong} wrong)")


def _gates(certs: Sequence[CellCertificate], unit: str | None,
           below: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Gate rules of one scope; with `below` (the policy-wide thresholds) only the cells the
    unit holds back further."""
    rules = []
    others = [c.threshold for c in certs if c.cell.name != POOLED]
    for cert in certs:
        if below is not None and cert.threshold <= below.get(cert.cell.name, 0.0):
            continue
        when: dict[str, Any] = {}
        if unit is not None:
            when["business_units"] = [unit]
        everyone = cert.cell.name == POOLED and all(cert.threshold <= t for t in others)
        if not everyone:
            when["intents"] = sorted(cert.cell.intents)
        when["max_confidence"] = cert.threshold
        name = GATE_PREFIX + cert.cell.name.replace(":", "-") + (f"-unit-{unit}" if unit else "")
        rules.append({"name": name, "when": when, "handler": "human", "reason": _reason(cert)})
    return rules


def gate_rules(policy_wide: Sequence[CellCertificate],
               units: Mapping[str, Sequence[CellCertificate]]) -> list[dict[str, Any]]:
    """Every gate: the cells' own (specific before pooled), then the business units' tighter."""
    ordered = sorted(policy_wide, key=lambda c: c.cell.name == POOLED)
    rules = _gates(ordered, None)
    thresholds = {c.cell.name: c.threshold for c in policy_wide}
    for unit, certs in sorted(units.items()):
        rules += _gates(sorted(certs, key=lambda c: c.cell.name == POOLED), unit, thresholds)
    return rules


def _family_reason(cert: FamilyCertificate, threshold: float) -> str:
    chosen = cert.chosen
    assert chosen is not None
    return (f"error budget: confidence at or below {threshold} for these intents; above the "
            f"intents' own thresholds the calibration set's test part certifies at most "
            f"{cert.max_rate:.2%} wrong automatic answers across the policy at "
            f"{1 - cert.delta:.0%} confidence (Learn-then-Test, estimated wrong-probability <= "
            f"{chosen.max_wrong:.3g}: {chosen.answered} automatic, {chosen.wrong} wrong, "
            f"Clopper-Pearson bound {cert.bound:.2%})")


def family_gate_rules(cert: FamilyCertificate, thresholds: Mapping[str, float],
                      unit: str | None = None, below: Mapping[str, float] | None = None
                      ) -> list[dict[str, Any]]:
    """One gate per distinct threshold (the pooled intents apart); with `below` (the policy-wide
    thresholds) only the intents a unit holds back further."""
    groups: dict[tuple[bool, float], list[str]] = {}
    for intent, threshold in thresholds.items():
        if below is not None and threshold <= below.get(intent, 0.0):
            continue
        groups.setdefault((intent not in cert.model.offsets, threshold), []).append(intent)
    rules = []
    suffix = f"-unit-{unit}" if unit else ""
    for (pooled, threshold), intents in sorted(groups.items(), key=lambda g: (g[0][0], -g[0][1])):
        when: dict[str, Any] = {"business_units": [unit]} if unit else {}
        when.update(intents=sorted(intents), max_confidence=threshold)
        name = GATE_PREFIX + (POOLED if pooled else f"{threshold:.3f}") + suffix
        rules.append({"name": name, "when": when, "handler": "human",
                      "reason": _family_reason(cert, threshold)})
    return rules


def _budget_data(budget: ErrorBudget) -> dict[str, Any]:
    data = budget.model_dump(exclude_none=True)
    for key in ("business_units", "intent_groups"):
        if not data[key]:
            del data[key]
    return data


def without_gates(text: str) -> str:
    """The policy's YAML without the gates of an earlier calibration (what calibration routes
    by, so calibrating a calibrated policy measures the same automatic answers)."""
    data = yaml.safe_load(text)
    data["rules"] = [r for r in data.get("rules") or []
                     if not str(r.get("name", "")).startswith(GATE_PREFIX)]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def calibrated_policy_text(base_text: str, budget: ErrorBudget, gates: list[dict[str, Any]],
                           provenance: str) -> str:
    """The base policy's YAML with the budget, the gates and a description of where they came
    from."""
    data = yaml.safe_load(base_text)
    rules = [r for r in data["rules"] if not str(r.get("name", "")).startswith(GATE_PREFIX)]
    at = next((i for i, r in enumerate(rules) if r.get("handler") != "human"), len(rules))
    data["rules"] = rules[:at] + gates + rules[at:]
    data["error_budget"] = _budget_data(budget)
    description = str(data.get("description") or "").split("\nCalibrated by ")[0].strip()
    data["description"] = f"{description}\nCalibrated by {provenance}".strip()
    ordered = {k: data[k] for k in ("description", "error_budget", "intent_groups", "budgets",
                                    "rules") if k in data}
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=100)
