"""The chart's monitoring: the PodMonitor scrapes every workload's /metrics, the
PrometheusRule's alerts are valid Prometheus rules that fire when they should (promtool's
`check rules` and `test rules`), and every rule and dashboard expression parses and names only
metrics the services really export.

promtool comes from Debian's `prometheus` package, unpacked (never installed or started) by
`make test-infra` into .tools/; PROMTOOL overrides its path.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from .test_helm_chart import CHART_DIR, FULLNAME, REPO, docs_of, kind, one, pod_spec

DASHBOARD = CHART_DIR / "dashboards" / "pinworks.json"
METRIC = re.compile(r"\b(pinworks_[a-z0-9_]+)")
SERIES_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool") or \
        shutil.which("promtool", path=str(REPO / ".tools"))
    assert found, "promtool not found: `make test-infra` unpacks it from Debian's prometheus"
    return str(Path(found).absolute())


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def exported_series() -> set[str]:
    """Every series name the services' metrics modules register."""
    from prometheus_client import REGISTRY

    for service in ("common", "classifier", "router", "specialists", "verifier", "escalation"):
        importlib.import_module(f"pinworks_{service}.metrics")

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


ALERT_TESTS = Path(__file__).with_name("alert_tests.yaml")


def test_the_alerts_fire_when_they_should(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups()))
    (tmp_path / "tests.yaml").write_text(ALERT_TESTS.read_text())
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
