"""The services' command groups as `pinworks` mounts them (entry points `pinworks.cli`), and
`pinworks policy simulate` with the real classifier the router finds by entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pinworks_cli.main import app, build_app
from pinworks_common.pricing import default_prices, estimated_cost
from pinworks_router.cli import read_tickets_csv

CURRENT = "rules:\n  - name: all-template\n    handler: template\n    fallbacks: [human]\n"
NEW = """\
rules:
  - name: oos-person
    when: {out_of_scope: true}
    handler: human
  - name: vip-frontier
    when: {metadata: {tier: [vip]}}
    handler: llm_frontier
    fallbacks: [human]
  - name: rest
    handler: template
"""
TICKETS = """\
ticket_id,business_unit,body,tier
w1,wealth,"My new card has not arrived yet, it has been two weeks",vip
w2,wealth,how do I top up with apple pay,basic
r1,retail,"I want to close my account, this is terrible service",vip
r2,retail,what is the weather in paris tomorrow,
r3,retail,how do I top up with apple pay,
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"current": tmp_path / "current.yaml", "new": tmp_path / "new.yaml",
             "tickets": tmp_path / "tickets.csv"}
    paths["current"].write_text(CURRENT)
    paths["new"].write_text(NEW)
    paths["tickets"].write_text(TICKETS)
    return paths


def test_simulate_counts_changes_and_projects_costs(files: dict[str, Path]) -> None:
    result = CliRunner().invoke(app, [
        "policy", "simulate", str(files["new"]), "--tickets", str(files["tickets"]),
        "--current", str(files["current"]), "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["tickets"] == 5
    # the two vip tickets go to the frontier; the weather question is out of scope (classifier)
    assert out["changed"] == 3
    assert {(t["from"], t["to"]): t["tickets"] for t in out["transitions"]} == {
        ("template", "llm_frontier"): 2, ("template", "human"): 1}
    assert {e["ticket_id"] for e in out["examples"]} == {"w1", "r1", "r2"}
    assert out["handlers"]["current"] == {"template": 5}
    prices = default_prices()
    texts = {row.ticket_id: row.body for row in read_tickets_csv(files["tickets"])}
    template = prices["template"].per_call
    frontier = {tid: estimated_cost(prices["llm_frontier"], text) for tid, text in texts.items()}
    wealth, retail = out["cost_by_business_unit"]["wealth"], out["cost_by_business_unit"]["retail"]
    assert Decimal(wealth["current_usd"]) == 2 * template
    assert Decimal(wealth["new_usd"]) == frontier["w1"] + template
    assert Decimal(retail["new_usd"]) == frontier["r1"] + template  # r2 to a person: unmetered
    assert Decimal(retail["all_frontier_usd"]) == frontier["r1"] + frontier["r2"] + frontier["r3"]
    assert Decimal(out["cost_total"]["current_usd"]) == 5 * template
    assert out["classifier_version"].startswith("intent-")


def _groups(typer_app: typer.Typer) -> list[str]:
    return sorted(typer.main.get_command(typer_app).commands)


def test_every_installed_service_mounts_its_groups_and_the_cli_its_own() -> None:
    assert {"classifier", "policy", "queue", "agent", "db", "report"} <= set(_groups(app))
    without_services = _groups(build_app([]))
    assert "db" in without_services and "submit" in without_services
    assert not {"classifier", "policy", "queue", "agent"} & set(without_services)


def test_a_service_that_is_not_installed_has_no_commands() -> None:
    """`pinworks --help` where the escalation service's entry points do not exist."""
    code = ("import importlib.metadata as metadata; real = metadata.entry_points; "
            "metadata.entry_points = lambda **kw: [e for e in real(**kw) "
            "if not e.value.startswith('pinworks_escalation')]; "
            "from typer.testing import CliRunner; from pinworks_cli.main import app; "
            "print(CliRunner().invoke(app, ['--help']).output)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout
    listed = {line.split()[0] for line in shown.splitlines() if line.startswith("  ")}
    assert {"policy", "classifier", "submit"} <= listed
    assert not {"queue", "agent"} & listed
