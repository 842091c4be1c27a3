"""`pinworks policy simulate|validate` offline, with the router alone: the classifier the command
finds by entry point is replaced by a scripted one (the real one: libs/cli/tests)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pinworks_common.commands import plugins
from pinworks_common.pricing import default_prices, estimated_cost
from pinworks_contracts.messages import Classification, IntentScore, TicketSubmission
from pinworks_router.cli import policy_app, read_tickets_csv

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
OUT_OF_SCOPE = {"r2"}
runner = CliRunner()


def scripted_classifier(tickets: Sequence[TicketSubmission], artifact_dir: Path | None
                        ) -> tuple[list[Classification], str]:
    """Every ticket `card_arrival` at 0.9, except the ones in OUT_OF_SCOPE."""
    return [Classification(intent="card_arrival", confidence=0.9,
                           alternatives=[IntentScore(intent="card_arrival", score=0.9)],
                           out_of_scope=t.ticket_id in OUT_OF_SCOPE, model_version="scripted-1")
            for t in tickets], "scripted-1"


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setattr(plugins, "offline_classifier", lambda: scripted_classifier)
    paths = {"current": tmp_path / "current.yaml", "new": tmp_path / "new.yaml",
             "tickets": tmp_path / "tickets.csv"}
    paths["current"].write_text(CURRENT)
    paths["new"].write_text(NEW)
    paths["tickets"].write_text(TICKETS)
    return paths


def test_simulate_counts_changes_and_projects_costs(files: dict[str, Path]) -> None:
    result = runner.invoke(policy_app, [
        "simulate", str(files["new"]), "--tickets", str(files["tickets"]),
        "--current", str(files["current"]), "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["tickets"] == 5 and out["changed"] == 3
    assert {(t["from"], t["to"]): t["tickets"] for t in out["transitions"]} == {
        ("template", "llm_frontier"): 2, ("template", "human"): 1}
    assert out["handlers"]["current"] == {"template": 5}
    prices = default_prices()
    texts = {row.ticket_id: row.body for row in read_tickets_csv(files["tickets"])}
    template = prices["template"].per_call
    frontier = {tid: estimated_cost(prices["llm_frontier"], text) for tid, text in texts.items()}
    wealth, retail = out["cost_by_business_unit"]["wealth"], out["cost_by_business_unit"]["retail"]
    assert Decimal(wealth["new_usd"]) == frontier["w1"] + template
    assert Decimal(retail["new_usd"]) == frontier["r1"] + template  # r2 to a person: unmetered
    assert Decimal(out["cost_total"]["current_usd"]) == 5 * template
    assert out["classifier_version"] == "scripted-1"


def test_simulate_table(files: dict[str, Path]) -> None:
    result = runner.invoke(policy_app, [
        "simulate", str(files["new"]), "--tickets", str(files["tickets"])])
    assert result.exit_code == 0, result.output
    assert "decisions change handler" in result.output and "(classifier scripted-1)" in result.output
    assert "all-frontier" in result.output and "TOTAL" in result.output


def test_simulate_without_a_classifier_says_what_to_install(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.undo()  # the real lookup again, over no installed entry point at all
    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    result = runner.invoke(policy_app, [
        "simulate", str(files["new"]), "--tickets", str(files["tickets"])])
    assert result.exit_code == 2
    assert "install pinworks-classifier" in " ".join(result.output.split())


def test_simulate_refuses_a_broken_policy(files: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - name: a\n    handler: kb\n    when: {patterns: ['(']}\n")
    result = runner.invoke(policy_app, [
        "simulate", str(broken), "--tickets", str(files["tickets"])])
    assert result.exit_code != 0
    assert "line 4" in result.output and "invalid regular expression" in result.output


def test_tickets_csv_metadata_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('body,metadata,tier\nhello,"{""region"": ""eu""}",vip\n')
    [ticket] = read_tickets_csv(path)
    assert ticket.metadata == {"region": "eu", "tier": "vip"}
    assert ticket.ticket_id == "row-2"
    path.write_text("body,metadata\nhello,{bad\n")
    with pytest.raises(typer.BadParameter, match="line 2: metadata is not JSON"):
        read_tickets_csv(path)
    path.write_text("body,business_unit\n,retail\n")
    with pytest.raises(typer.BadParameter, match="line 2: body"):
        read_tickets_csv(path)
    path.write_text("subject\nhi\n")
    with pytest.raises(typer.BadParameter, match="needs a `body`"):
        read_tickets_csv(path)


def test_validate(files: dict[str, Path], tmp_path: Path) -> None:
    ok = runner.invoke(policy_app, ["validate", str(files["new"])])
    assert ok.exit_code == 0 and "ok, 3 rules" in ok.output
    broken = tmp_path / "b.yaml"
    broken.write_text("rules:\n  - name: a\n    handler: kb\n    when: {urgency: [panic]}\n")
    bad = runner.invoke(policy_app, ["validate", str(broken)])
    assert bad.exit_code != 0 and "line 4" in bad.output
