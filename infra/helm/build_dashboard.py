"""Write the Grafana dashboard of the chart (`pinworks/dashboards/pinworks.json`).

The JSON is generated so every panel is one PromQL expression over the metrics the services
export (tests/infra checks each against them and parses it with promtool). Rerun after
changing a panel:  .venv/bin/python infra/helm/build_dashboard.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "pinworks" / "dashboards" / "pinworks.json"
RATE = "$__rate_interval"
UNIT = 'business_unit=~"$business_unit"'

Panel = tuple[str, str, list[tuple[str, str]]]  # title, unit, [(expr, legend)]

ROWS: list[tuple[str, list[Panel]]] = [
    ("Pipeline", [
        ("Messages handled per consumer", "ops", [
            (f'sum by (consumer) (rate(pinworks_stage_messages_total{{result="handled"}}[{RATE}]))',
             "{{consumer}}")]),
        ("Failed, retried and dead-lettered", "ops", [
            (f'sum by (consumer, result) (rate(pinworks_stage_messages_total{{result!="handled"}}'
             f'[{RATE}]))', "{{consumer}} {{result}}")]),
        ("JetStream consumer lag", "short", [
            ("max by (consumer) (pinworks_consumer_pending_messages)", "{{consumer}} pending"),
            ("max by (consumer) (pinworks_consumer_ack_pending_messages)", "{{consumer}} unacked")]),
        ("Stage latency p99 (batch to ack)", "s", [
            (f"histogram_quantile(0.99, sum by (le, stage) (rate(pinworks_stage_seconds_bucket"
             f"[{RATE}])))", "{{stage}}")]),
        ("Submission to outcome", "s", [
            (f"histogram_quantile(0.5, sum by (le, status, by) "
             f"(rate(pinworks_end_to_end_seconds_bucket[{RATE}])))", "p50 {{status}} by {{by}}"),
            (f"histogram_quantile(0.99, sum by (le, status, by) "
             f"(rate(pinworks_end_to_end_seconds_bucket[{RATE}])))", "p99 {{status}} by {{by}}")]),
        ("Outcomes", "ops", [
            (f"sum by (status, by) (rate(pinworks_outcomes_total{{{UNIT}}}[{RATE}]))",
             "{{status}} by {{by}}")]),
    ]),
    ("Classifier", [
        ("Confidence per unit (p10, p50)", "percentunit", [
            (f"histogram_quantile(0.1, sum by (le, business_unit) "
             f"(rate(pinworks_classifier_confidence_bucket{{{UNIT}}}[{RATE}])))",
             "p10 {{business_unit}}"),
            (f"histogram_quantile(0.5, sum by (le, business_unit) "
             f"(rate(pinworks_classifier_confidence_bucket{{{UNIT}}}[{RATE}])))",
             "p50 {{business_unit}}")]),
        ("Out-of-scope rate per unit", "percentunit", [
            (f'sum by (business_unit) (rate(pinworks_classifier_classified_total{{{UNIT}, '
             f'out_of_scope="true"}}[{RATE}])) / sum by (business_unit) '
             f'(rate(pinworks_classifier_classified_total{{{UNIT}}}[{RATE}]))',
             "{{business_unit}}")]),
        ("Drift vs training (PSI over 24 h; alert above 0.25)", "short", [
            ("max by (distribution) (pinworks_classifier_drift_psi)", "{{distribution}}"),
        ]),
        ("Rejected submissions", "ops", [
            (f"sum(rate(pinworks_classifier_rejected_total[{RATE}]))", "rejected")]),
    ]),
    ("Routing and budgets", [
        ("Routing decisions per rule and handler", "ops", [
            (f"sum by (rule, handler) (rate(pinworks_routing_decisions_total[{RATE}]))",
             "{{rule}} -> {{handler}}")]),
        ("Tickets passed over an exhausted budget", "ops", [
            (f"sum by (business_unit, handler) "
             f"(rate(pinworks_router_budget_exhausted_total{{{UNIT}}}[{RATE}]))",
             "{{business_unit}} {{handler}}")]),
        ("Budget used (share of limit)", "percentunit", [
            (f"max by (business_unit, handler, kind) (pinworks_budget_used{{{UNIT}}}) / "
             f"max by (business_unit, handler, kind) (pinworks_budget_limit{{{UNIT}}})",
             "{{business_unit}} {{handler}} {{kind}}")]),
    ]),
    ("Specialists and verifier", [
        ("Specialist results", "ops", [
            (f"sum by (handler, result) (rate(pinworks_specialist_results_total[{RATE}]))",
             "{{handler}} {{result}}")]),
        ("Verifier failures per check", "ops", [
            (f"sum by (check) (rate(pinworks_verifier_check_failures_total[{RATE}]))",
             "{{check}}")]),
        ("Specialist-classifier disagreement rate", "percentunit", [
            (f"sum by (handler) (rate(pinworks_specialist_disagreements_total[{RATE}])) / "
             f"sum by (handler) (rate(pinworks_specialist_intent_readings_total[{RATE}]))",
             "{{handler}}")]),
    ]),
    ("Model endpoints", [
        ("Calls per endpoint and result", "ops", [
            (f"sum by (endpoint, result) (rate(pinworks_model_calls_total[{RATE}]))",
             "{{endpoint}} {{result}}")]),
        ("Call latency p99", "s", [
            (f"histogram_quantile(0.99, sum by (le, endpoint) "
             f"(rate(pinworks_model_call_seconds_bucket[{RATE}])))", "{{endpoint}}")]),
        ("Tokens billed", "short", [
            (f"sum by (endpoint, direction) (rate(pinworks_model_tokens_total[{RATE}]))",
             "{{endpoint}} {{direction}}")]),
        ("Circuit breaker (0 closed, 1 half-open, 2 open)", "short", [
            ("max by (endpoint) (pinworks_model_circuit_state)", "{{endpoint}}")]),
    ]),
    ("Cost", [
        ("Cost per unit (USD per hour)", "currencyUSD", [
            (f"sum by (business_unit) (increase(pinworks_cost_usd_total{{{UNIT}}}[1h]))",
             "{{business_unit}}")]),
        ("Cost per unit and handler (USD per hour)", "currencyUSD", [
            (f"sum by (business_unit, component) "
             f"(increase(pinworks_cost_usd_total{{{UNIT}}}[1h]))",
             "{{business_unit}} {{component}}")]),
    ]),
    ("Escalation queue", [
        ("Tickets waiting for a person", "short", [
            (f"max by (business_unit, status) (pinworks_escalation_queue_depth{{{UNIT}}})",
             "{{business_unit}} {{status}}")]),
        ("Oldest waiting ticket", "s", [
            (f"max by (business_unit) "
             f"(pinworks_escalation_oldest_ticket_age_seconds{{{UNIT}}})", "{{business_unit}}")]),
        ("Tickets past their SLA", "short", [
            (f"max by (business_unit) (pinworks_escalation_sla_breached_tickets{{{UNIT}}})",
             "{{business_unit}}")]),
    ]),
]


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, panel_id = 0, 1
    for row_title, row_panels in ROWS:
        panels.append({"type": "row", "title": row_title, "id": panel_id, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        panel_id += 1
        y += 1
        for index, (title, unit, targets) in enumerate(row_panels):
            panels.append({
                "type": "timeseries",
                "title": title,
                "id": panel_id,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 8, "x": (index % 3) * 8, "y": y + (index // 3) * 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    {"refId": chr(ord("A") + n), "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for n, (expr, legend) in enumerate(targets)
                ],
            })
            panel_id += 1
        y += ((len(row_panels) + 2) // 3) * 8
    return {
        "title": "pinworks",
        "uid": "pinworks-overview",
        "description": "Throughput, lag, latency, confidence and drift, routing, verifier, "
                       "model endpoints, cost, budgets and the escalation queue.",
        "tags": ["pinworks"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"type": "datasource", "name": "datasource", "label": "Prometheus",
             "query": "prometheus", "current": {}, "hide": 0},
            {"type": "query", "name": "business_unit", "label": "Business unit",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": "label_values(pinworks_outcomes_total, business_unit)",
                       "refId": "units"},
             "definition": "label_values(pinworks_outcomes_total, business_unit)",
             "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
             "current": {"text": "All", "value": "$__all"}, "hide": 0},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"{OUT}: {sum(1 for p in build()['panels'] if p['type'] != 'row')} panels")
