"""The chart's monitoring: the PodMonitor scrapes every workload's /metrics, the
PrometheusRule's alerts are valid Prometheus rules that fire when they should (promtool's
`check rules` and `test rules`), and every rule and dashboard expression parses and names only
metrics the services really export.

promtool comes from Debian's `prometheus` package, unpacked (never installed or started) by
`make test-infra` into .tools/; PROMTOOL overrides its path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .test_helm_chart import CHART_DIR, FULLNAME, REPO, docs_of, kind, one, pod_spec

DASHBOARD = CHART_DIR / "dashboards" / "pinworks.json"
METRIC = re.compile(r"\b(pinworks_[a-z0-9_]+)")
SERIES_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool") or \
        shutil.which("promtool", path=str(REPO / ".tools"))
    assert found, "promtool not found: `make test-infra` unpacks it from Debian's prometheus"
    return found


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def exported_series() -> set[str]:
    """Every series name the services' metrics modules register."""
    import pinworks_classifier.metrics
    import pinworks_common.metrics
    import pinworks_escalation.metrics
    import pinworks_router.metrics
    import pinworks_specialists.metrics
    import pinworks_verifier.metrics  # noqa: F401
    from prometheus_client import REGISTRY

    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    return {name for name in names if name.startswith("pinworks_")}


def rule_groups() -> dict[str, Any]:
    [rule] = kind(docs_of("monitoring"), "PrometheusRule")
    return {"groups": rule["spec"]["groups"]}


def dashboard_expressions() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in board["panels"]
            for target in panel.get("targets", [])]


# ------------------------------------------------------------------ rendering


def test_monitoring_is_off_by_default():
    docs = docs_of("defaults")
    assert not kind(docs, "PodMonitor") and not kind(docs, "PrometheusRule")
    assert not [d for d in kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]


def test_the_pod_monitor_scrapes_every_workload_on_its_health_port():
    docs = docs_of("monitoring")
    [monitor] = kind(docs, "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "health" and endpoint["path"] == "/metrics"
    selector = monitor["spec"]["selector"]["matchLabels"]
    deployments = kind(docs, "Deployment")
    assert {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments} >= {
        "classifier", "router", "specialists", "verifier", "escalation"}
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in selector.items()), deployment["metadata"]
        [service] = [c for c in pod_spec(deployment)["containers"]
                     if any(p.get("name") == "health" for p in c.get("ports", []))]
        assert service["name"]


def test_prometheus_may_reach_the_health_port_through_the_network_policy():
    docs = docs_of("monitoring")
    policy = one(docs, "NetworkPolicy", f"{FULLNAME}-router")
    peers = [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])]
    assert {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}} in peers


def test_the_dashboard_config_map_carries_the_dashboard_file():
    docs = docs_of("monitoring")
    board = one(docs, "ConfigMap", f"{FULLNAME}-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["pinworks.json"]) == json.loads(DASHBOARD.read_text())


# ------------------------------------------------------------------ rules


def test_promtool_accepts_the_rules(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups()))
    result = run_promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout, result.stdout


def test_promtool_refuses_a_broken_rule(tmp_path):
    """The check can fail: a rule with a PromQL syntax error is refused."""
    groups = rule_groups()
    groups["groups"][0]["rules"][0]["expr"] = "max by (consumer (pinworks_consumer_pending_messages)"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    assert run_promtool("check", "rules", "rules.yaml", cwd=tmp_path).returncode != 0


ALERT_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # two replicas report the same lag: max, not sum, so 1500 (> 1000), not 3000
      - series: 'pinworks_consumer_pending_messages{stream="PINWORKS_WORK",consumer="router",pod="a"}'
        values: '1500x30'
      - series: 'pinworks_consumer_pending_messages{stream="PINWORKS_WORK",consumer="router",pod="b"}'
        values: '1500x30'
      - series: 'pinworks_consumer_pending_messages{stream="PINWORKS_WORK",consumer="verifier",pod="a"}'
        values: '600x30'
      - series: 'pinworks_consumer_pending_messages{stream="PINWORKS_WORK",consumer="verifier",pod="b"}'
        values: '600x30'
      - series: 'pinworks_stage_messages_total{stage="router",consumer="router",result="handled"}'
        values: '0+100x30'
      - series: 'pinworks_stage_messages_total{stage="verifier",consumer="verifier",result="handled"}'
        values: '0+0x30'
      # 5 of 100 messages a minute dead-lettered: 5% > 1%
      - series: 'pinworks_stage_messages_total{stage="router",consumer="router",result="dead_lettered"}'
        values: '0+5x30'
      - series: 'pinworks_budget_used{business_unit="retail",handler="llm_frontier",kind="usd_per_month"}'
        values: '95x30'
      - series: 'pinworks_budget_limit{business_unit="retail",handler="llm_frontier",kind="usd_per_month"}'
        values: '100x30'
      - series: 'pinworks_classifier_drift_psi{distribution="intent"}'
        values: '0.4x90'
      - series: 'pinworks_classifier_drift_samples{distribution="intent"}'
        values: '500x90'
      - series: 'pinworks_classifier_drift_psi{distribution="confidence"}'
        values: '0.4x90'
      - series: 'pinworks_classifier_drift_samples{distribution="confidence"}'
        values: '50x90'
      - series: 'pinworks_model_circuit_state{endpoint="llm_small"}'
        values: '2x30'
      - series: 'pinworks_escalation_sla_breached_tickets{business_unit="retail"}'
        values: '0x5 3x25'
    alert_rule_test:
      - eval_time: 15m
        alertname: PinworksConsumerLag
        exp_alerts:
          - exp_labels: {severity: warning, stream: PINWORKS_WORK, consumer: router}
            exp_annotations:
              summary: "router is 1500 messages behind"
              description: "JetStream consumer router on PINWORKS_WORK has had more than 1000 undelivered messages for 10m: scale it out or look for a slow dependency."
      - eval_time: 25m
        alertname: PinworksConsumerStalled
        exp_alerts:
          - exp_labels: {severity: critical, consumer: verifier}
            exp_annotations:
              summary: "verifier has work waiting and handles none"
              description: "Messages wait for verifier but no replica acknowledged any for 10 minutes."
      - eval_time: 25m
        alertname: PinworksDeadLetterRate
        exp_alerts:
          - exp_labels: {severity: critical, stage: router}
            exp_annotations:
              summary: "router dead-letters 4.762% of its messages"
              description: "More than 0.01 of the router stage's messages end in the dead-letter table (pinworks audit, dead_letters)."
      - eval_time: 10m
        alertname: PinworksBudgetNearlyExhausted
        exp_alerts:
          - exp_labels: {severity: warning, business_unit: retail, handler: llm_frontier, kind: usd_per_month}
            exp_annotations:
              summary: "retail used 95% of its llm_frontier usd_per_month budget"
              description: "When it runs out, the router passes tickets over llm_frontier to the next handler in the rule's chain (in the end, a person)."
      - eval_time: 10m
        alertname: PinworksBudgetExhausted
        exp_alerts: []
      # only the intent distribution has enough samples, and only after an hour
      - eval_time: 30m
        alertname: PinworksClassifierDrift
        exp_alerts: []
      - eval_time: 80m
        alertname: PinworksClassifierDrift
        exp_alerts:
          - exp_labels: {severity: warning, distribution: intent}
            exp_annotations:
              summary: "Live intent distribution drifted from training (PSI 400m)"
              description: "The last 24 hours of in-scope tickets differ from the classifier's training data: check its accuracy on recent corrections and consider retraining."
      - eval_time: 10m
        alertname: PinworksModelCircuitOpen
        exp_alerts:
          - exp_labels: {severity: warning, endpoint: llm_small}
            exp_annotations:
              summary: "The circuit to llm_small is open"
              description: "After repeated failures the specialists stopped calling llm_small; its tickets take the fallback chain."
      - eval_time: 8m
        alertname: PinworksEscalationSlaBreached
        exp_alerts: []
      - eval_time: 12m
        alertname: PinworksEscalationSlaBreached
        exp_alerts:
          - exp_labels: {severity: critical, business_unit: retail}
            exp_annotations:
              summary: "3 retail tickets are past their SLA"
              description: "Escalated tickets wait past their SLA due time: more agents on the retail queue."
"""


def test_the_alerts_fire_when_they_should(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups()))
    (tmp_path / "tests.yaml").write_text(ALERT_TESTS)
    result = run_promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_and_dashboard_name_only_exported_metrics():
    exported = exported_series()
    assert {"pinworks_stage_messages_total", "pinworks_consumer_pending_messages",
            "pinworks_classifier_drift_psi", "pinworks_model_circuit_state",
            "pinworks_end_to_end_seconds_bucket"} <= exported
    expressions = [(r["alert"], r["expr"]) for g in rule_groups()["groups"] for r in g["rules"]]
    expressions += dashboard_expressions()
    unknown = {(where, name) for where, expr in expressions for name in METRIC.findall(expr)
               if name not in exported}
    assert not unknown, sorted(unknown)


def test_every_dashboard_expression_parses(tmp_path):
    """promtool parses each panel's PromQL (as a recording rule; Grafana's $__rate_interval
    stands in as 5m and the unit variable as a regex)."""
    expressions = dashboard_expressions()
    assert len(expressions) >= 25
    rules = [{"record": f"pinworks:dashboard:{n}",
              "expr": expr.replace("$__rate_interval", "5m").replace("$business_unit", ".*")}
             for n, (_, expr) in enumerate(expressions)]
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump(
        {"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_is_importable_json():
    board = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    assert board["uid"] and board["title"] == "pinworks"
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "business_unit"}
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
    # the committed file is what the generator writes
    from importlib import util

    spec = util.spec_from_file_location("build_dashboard", REPO / "infra/helm/build_dashboard.py")
    assert spec and spec.loader
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == board
