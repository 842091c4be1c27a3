"""The services' command groups as `pinworks` mounts them (entry points `pinworks.cli`), and
`pinworks policy simulate` with the real classifier the router finds by entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from pinworks_cli.main import app, build_app

CURRENT = "rules:\n  - {name: rest, handler: template}\n"
POLICY = ("rules:\n  - {name: oos-person, when: {out_of_scope: true}, handler: human}\n"
          "  - {name: rest, handler: template}\n")
TICKETS = ("id,body\nc1,\"My new card has not arrived yet, it has been two weeks\"\n"
           "w1,what is the weather in paris tomorrow\n")


def test_simulate_classifies_with_the_installed_classifier(tmp_path: Path) -> None:
    """The router's command, the classifier's model: only the weather question leaves scope."""
    current, policy, tickets = (tmp_path / name for name in ("current.yaml", "new.yaml",
                                                             "tickets.csv"))
    current.write_text(CURRENT)
    policy.write_text(POLICY)
    tickets.write_text(TICKETS)
    result = CliRunner().invoke(app, ["policy", "simulate", str(policy), "--tickets",
                                      str(tickets), "--current", str(current), "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["classifier_version"].startswith("intent-")
    assert out["changed"] == 1 and [e["ticket_id"] for e in out["examples"]] == ["w1"]
    assert out["handlers"]["new"] == {"human": 1, "template": 1}


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
