"""`pinworks audit`'s readable trail: what it shows of each decision."""

from __future__ import annotations

from typing import Any

from pinworks_cli.audit import render_trail


def _trail(decisions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "ticket": {"ticket_id": "T-1", "business_unit": "retail", "trace_id": "0" * 32,
                   "received_at": "2026-12-07T10:00:00Z", "channel": None, "body": "Card?"},
        "rejected_payloads": [], "decisions": decisions, "costs": [], "total_cost_usd": 0.0,
        "outcomes": [], "escalation": None, "accountability": [], "dead_letters": [],
    }


def _decision(stage: str, reason: str, output: dict[str, Any]) -> dict[str, Any]:
    return {"created_at": "2026-12-07T10:00:01Z", "stage": stage, "component": stage,
            "version": "1", "cost_usd": 0.0, "reason": reason, "inputs": {}, "output": output,
            "latency_ms": None}


def test_a_routing_decision_shows_its_rule_and_the_rule_s_reason_once_each() -> None:
    text = render_trail(_trail([
        _decision("router", "rule security-to-person -> human",
                  {"handler": "human", "rule": "security-to-person",
                   "reason": "possible fraud or security incident; a person must handle it",
                   "passed_over": [{"rule": "oos", "why": "out_of_scope is False"}]}),
        _decision("verifier", "every check passed", {"passed": True, "reasons": []}),
    ]))
    lines = text.splitlines()
    assert "      rule security-to-person -> human" in lines
    assert "      why: possible fraud or security incident; a person must handle it" in lines
    assert text.count("possible fraud") == 1
    assert "      passed over oos: out_of_scope is False" in lines
    assert not any(line.strip().startswith("why:") for line in lines[lines.index(
        "      every check passed"):])
