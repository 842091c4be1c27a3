"""`pinworks queue …` without a platform: intents and the ticket as an agent reads it (the
commands against a real queue: tests/e2e/test_queue.py)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from pinworks_escalation.cli.erase_commands import erase_app
from pinworks_escalation.cli.queue_commands import queue_app, render_queued

runner = CliRunner()
# Mounted as `pinworks` mounts it (plain error text, no rich boxes).
app = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False)
app.add_typer(queue_app, name="queue")
app.add_typer(erase_app, name="erase")


def test_send_back_refuses_an_unknown_intent_and_suggests_the_nearest() -> None:
    result = runner.invoke(app, ["queue", "send-back", "T-1", "--intent", "cardd_arival"])
    assert result.exit_code == 2
    assert "'cardd_arival' is not an intent the classifier knows; did you mean card_arrival?" \
        in " ".join(result.output.split())
    nothing_close = runner.invoke(app, ["queue", "send-back", "T-1", "--intent", "qqqqqq"])
    assert "pinworks queue intents" in nothing_close.output
    listed = runner.invoke(app, ["queue", "intents", "card"]).output.split()
    assert "card_arrival" in listed and all("card" in i for i in listed)
    assert len(runner.invoke(app, ["queue", "intents"]).output.split()) == 77


def test_a_queued_ticket_reads_like_a_ticket() -> None:
    text = render_queued({
        "ticket_id": "T-1", "business_unit": "retail", "status": "claimed", "priority": 2,
        "tier": "gold", "claimed_by": "ana", "sla_due_at": "2026-12-02T10:00:00+00:00",
        "overdue": True, "created_at": "2026-12-02T09:00:00+00:00", "source_stage": "router",
        "reasons": ["the ticket is not something a bank's support desk handles"],
        "envelope": {"ticket": {"body": "Where is my card?", "subject": "Card", "channel": "email"},
                     "classification": {"intent": "card_arrival", "confidence": 0.4,
                                        "out_of_scope": False, "model_version": "m1",
                                        "alternatives": [{"intent": "card_arrival", "score": 0.4},
                                                         {"intent": "lost_or_stolen_card",
                                                          "score": 0.3}]},
                     "route": {"handler": "human", "rule": "unsure-to-person", "reason": "unsure"}},
        "costs": [{"component": "classifier", "amount_usd": 0.0001}], "cost_usd": 0.0001,
        "actions": [{"at": "2026-12-02T09:05:00+00:00", "actor_type": "agent", "actor": "ana",
                     "action": "claim"}],
        "trace_id": "abc",
    })
    assert text.startswith("Ticket T-1  (retail, claimed by ana, priority 2, tier gold)")
    assert "OVERDUE" in text and "  Where is my card?" in text and "Subject: Card" in text
    assert "Classifier: card_arrival at 40%; next: lost_or_stolen_card 30%" in text
    assert "Route: human by rule unsure-to-person: unsure" in text
    assert "agent ana: claim" in text and "pinworks audit T-1" in text


def test_erase_needs_the_agent_who_answers_for_it() -> None:
    result = runner.invoke(app, ["erase", "--ticket", "T-1", "--yes"])  # no login-name default
    assert result.exit_code == 2 and "Missing option '--by'" in result.output


def test_erase_refuses_an_id_no_ticket_can_have_before_asking_to_confirm() -> None:
    for args, wrong in ((["--ticket", "T 1"], "--ticket 'T 1' is not a ticket id"),
                        (["--ticket", "partner~T-1", "--platform", "partner"],
                         "--ticket 'partner~T-1' is not a ticket id as its platform submits it"),
                        (["--ticket", "T-1", "--platform", "no/such"],
                         "--platform 'no/such' is not a platform name")):
        # no database to ask: refused before any connection, and before the prompt
        result = runner.invoke(app, ["erase", *args, "--by", "dpo"], input="y\n",
                               env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"})
        assert result.exit_code == 2, result.output
        assert wrong in " ".join(result.output.split())
        assert "Erase the personal data" not in result.output
