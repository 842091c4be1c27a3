"""The CLI without a platform: help text, start-up imports, intents, CSV columns, one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pinworks_cli.main import app
from pinworks_common.commands.platform import (
    Connections,
    PlatformUnavailable,
    connections,
    describe_failure,
    find_run_env,
    redact,
)
from pinworks_common.commands.tickets_csv import read_ticket_rows

runner = CliRunner()


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in getattr(group, "commands", {}).items():
        paths += _command_paths(command, (*prefix, name))
    return paths


def test_every_help_page_is_clean() -> None:
    root = typer.main.get_command(app)
    paths = _command_paths(root)
    assert ("queue", "send-back") in paths and ("policy", "simulate") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], terminal_width=100)
        assert result.exit_code == 0, (path, result.output)
        assert not re.search(r"\{[a-z_]+\}", result.output), (path, result.output)
        for leak in ("<bool>", "read_tickets_csv", "Value error"):
            assert leak not in result.output, (path, leak, result.output)
    usage = runner.invoke(app, ["queue", "show", "--help"]).output
    assert "queue show [OPTIONS] TICKET_ID" in usage
    assert "[TICKET_ID]" in runner.invoke(app, ["audit", "--help"]).output


def test_report_costs_explains_its_terms() -> None:
    from pinworks_cli.report import EXPLANATION

    text = " ".join(runner.invoke(app, ["report", "costs", "--help"]).output.split())
    assert '"compound": the sum of its components\' charges' in text
    assert 'one ledger "entry" per component per ticket' in text
    assert "compound:" in EXPLANATION and "entries:" in EXPLANATION


def test_importing_the_cli_loads_nothing_heavy() -> None:
    """What keeps `pinworks --help` fast: no NATS, database, rich console or model at import."""
    heavy = ("nats", "sqlalchemy", "rich.console", "numpy", "pydantic", "pinworks_router.policy",
             "pinworks_classifier.model")
    code = ("import sys, pinworks_cli.main; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_ticket_csv_reads_the_usual_column_names(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("ID,Text,Business Unit,Title,tier\nT-9,Card lost,wealth,Help,gold\n,hi,,,\n")
    first, second = read_ticket_rows(path)
    assert first == {"ticket_id": "T-9", "business_unit": "wealth", "body": "Card lost",
                     "subject": "Help", "metadata": {"tier": "gold"}}
    assert second == {"ticket_id": "export-2", "business_unit": "retail", "body": "hi"}
    path.write_text("comment\nhello\n")
    with pytest.raises(typer.BadParameter, match="needs a `body`"):
        read_ticket_rows(path)


def test_without_a_platform_the_error_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NATS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PlatformUnavailable, match="make run"):
        _ = connections().database_url
    result = runner.invoke(app, ["audit", "T-1"])
    assert result.exit_code == 2 and "no platform to talk to" in result.output
    assert "Traceback" not in result.output
    (tmp_path / ".run").mkdir()
    (tmp_path / ".run" / "env").write_text(
        "export NATS_URL='nats://h:1'\nexport DATABASE_URL='postgresql://u:p@h/db'\n"
        "export PATH='/x/.venv/bin':\"$PATH\"\n")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep" / "er")
    assert find_run_env() == tmp_path / ".run" / "env"
    assert connections() == Connections("nats://h:1", "postgresql://u:p@h/db",
                                        str(tmp_path / ".run" / "env"))


class _Sql(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def test_infrastructure_failures_are_described_in_one_line() -> None:
    import nats.errors

    conns = Connections("nats://n:4222", "postgresql://pw:secret@db:5432/pinworks", "the env")
    assert redact(conns.database_url) == "postgresql://pw:***@db:5432/pinworks"
    assert "cannot reach NATS at nats://n:4222" in str(
        describe_failure(nats.errors.NoServersError(), conns))
    assert "cannot reach Postgres at postgresql://pw:***@db:5432/pinworks" in str(
        describe_failure(ConnectionRefusedError(111, "refused"), conns))
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = _Sql("42P01")
    assert "pinworks db upgrade" in str(describe_failure(wrapped, conns))
    import nats.js.errors

    assert "has no pinworks streams" in str(
        describe_failure(nats.js.errors.NoStreamResponseError(), conns))
    assert describe_failure(ValueError("a bug"), conns) is None, "bugs are not disguised"


def test_submission_message_ids_name_the_submitting_platform(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """JetStream drops a repeated Nats-Msg-Id across every platform's submissions, so two
    platforms' submissions of the same id and payload must not share one."""
    from pinworks_cli.publishing import submission_msg_id

    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:1")
    monkeypatch.setenv("PINWORKS_PLATFORM", "support")
    ours = submission_msg_id("T-1", b"{}")
    monkeypatch.setenv("PINWORKS_PLATFORM", "partner")
    theirs = submission_msg_id("T-1", b"{}")
    assert ours.startswith("T-1:submitted:") and theirs.startswith("partner~T-1:submitted:")
    assert ours.split(":")[-1] == theirs.split(":")[-1], "the same payload hash"
