"""`pinworks policy calibrate` writes a policy that `pinworks policy simulate` takes like any other
(the classifier simulate finds by entry point is replaced by a scripted one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pinworks_common.commands import plugins
from pinworks_contracts.messages import Classification, TicketSubmission
from pinworks_router.calibration.synthetic import write_synthetic_set
from pinworks_router.cli import policy_app as app
from pinworks_router.policy import DEFAULT_POLICY, load_policy


def confident_card_arrival(tickets: list[TicketSubmission], _artifact: Path | None
                           ) -> tuple[list[Classification], str]:
    """Every ticket read as card_arrival at 0.97; the weather question out of scope."""
    return [Classification(intent="card_arrival", confidence=0.97, alternatives=[],
                           out_of_scope="weather" in t.body, model_version="scripted-2")
            for t in tickets], "scripted-2"

TICKETS = """\
ticket_id,business_unit,body
t1,retail,"My new card has not arrived yet, it has been two weeks"
t2,retail,how do I top up with apple pay
t3,retail,what is the weather in paris tomorrow
"""


def test_calibrate_then_simulate_the_written_policy(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "offline_classifier", lambda: confident_card_arrival)
    data = tmp_path / "data"
    write_synthetic_set(data, [("card_arrival", 5000), ("top_up_by_card_charge", 5000)],
                        out_of_scope=500, wrong_at=0.04)
    out = tmp_path / "calibrated.yaml"
    result = CliRunner().invoke(app, ["calibrate", "--out", str(out),
                                      "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "risk-coverage curve" in result.output and "operating points" in result.output
    assert "all-frontier" in result.output and "all-human" in result.output
    written = load_policy(out)
    assert any(r.name.startswith("error-budget-") for r in written.rules)

    tickets = tmp_path / "tickets.csv"
    tickets.write_text(TICKETS)
    simulated = CliRunner().invoke(app, ["simulate", str(out), "--tickets", str(tickets),
                                         "--current", str(DEFAULT_POLICY), "--format", "json"])
    assert simulated.exit_code == 0, simulated.output
    report = json.loads(simulated.output)
    assert report["new_policy"] == written.version
    assert report["current_policy"] == load_policy().version
    assert report["tickets"] == 3
    assert report["classifier_version"] == "scripted-2"


def test_calibrate_json_and_refusal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_synthetic_set(data, [("card_arrival", 3000), ("age_limit", 3000)], wrong_at=1.0)
    out = tmp_path / "calibrated.yaml"
    refused = CliRunner().invoke(app, ["calibrate", "--out", str(out), "--data-dir",
                                       str(data), "--max-wrong-rate", "0.001"])
    assert refused.exit_code == 1
    assert "calibration refused" in refused.output and not out.exists()
    write_synthetic_set(data, [("card_arrival", 5000), ("age_limit", 5000)], wrong_at=0.04)
    result = CliRunner().invoke(app, ["calibrate", "--out", str(out), "--data-dir",
                                      str(data), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["written_policy"] == load_policy(out).version
    assert report["measured"]["wrong_rate"] <= 0.01
