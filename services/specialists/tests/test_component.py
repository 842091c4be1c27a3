"""Component tier of the specialists: a handler's stage under the real runner and ledger, in
memory (no Postgres, no NATS), fed real routed envelopes as JetStream messages."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pinworks_common.ledger.memory import StageHarness, sent
from pinworks_common.stage import escalate_on_dead_letter
from pinworks_contracts import messages
from pinworks_contracts.subjects import DRAFTED, ESCALATION_REQUESTED, routed_subject
from pinworks_specialists.handlers import Declined
from pinworks_specialists.stage import SpecialistStage


class PricedHandler:
    """Drafts at a price, or declines (still charged) when the ticket asks it to."""

    name = "kb"
    version = "kb-test-1"

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def handle(self, envelope: messages.TicketEnvelope) -> messages.Draft | Declined:
        self.calls.append(envelope.ticket.ticket_id)
        if "decline" in envelope.ticket.body:
            return Declined("no passage covers it", cost_usd=Decimal("0.01"))
        return messages.Draft(handler=self.name, handler_version=self.version, answer="It is on its way.",
                     cost_usd=Decimal("0.02"))

    async def close(self) -> None:
        return None


class LocalPricedHandler(PricedHandler):
    """The same decisions, made at once in this process (as templates and the help centre)."""

    def handle_now(self, envelope: messages.TicketEnvelope) -> messages.Draft | Declined:
        self.calls.append(envelope.ticket.ticket_id)
        if "decline" in envelope.ticket.body:
            return Declined("no passage covers it", cost_usd=Decimal("0.01"))
        return messages.Draft(handler=self.name, handler_version=self.version,
                              answer="It is on its way.", cost_usd=Decimal("0.02"))

    async def handle(self, envelope: messages.TicketEnvelope) -> messages.Draft | Declined:
        raise AssertionError("a local handler is called through handle_now")


HANDLERS = pytest.mark.parametrize("handler_class", [PricedHandler, LocalPricedHandler])


def harness(handler: PricedHandler) -> StageHarness:
    return StageHarness(SpecialistStage(handler, heartbeat_seconds=30),
                        on_dead_letter=escalate_on_dead_letter("specialist"))


def routed(ticket_id: str, body: str = "Where is my card?") -> messages.TicketEnvelope:
    return messages.TicketEnvelope(
        ticket=messages.TicketSubmission(ticket_id=ticket_id, business_unit="retail", body=body),
        trace_id="0" * 32, received_at=datetime(2026, 1, 1, tzinfo=UTC),
        classification=messages.Classification(intent="card_arrival", confidence=0.9, alternatives=[],
                                      out_of_scope=False, model_version="m"),
        route=messages.RouteDecision(handler="kb", fallbacks=["llm_small", "human"], rule="r",
                            reason="r", policy_version="p"))


@HANDLERS
def test_a_draft_goes_to_the_verifier_and_a_decline_down_the_chain(
        handler_class: type[PricedHandler]) -> None:
    handler = handler_class()
    stage = harness(handler)
    drafted = stage.message(routed("S-1"), routed_subject("kb"))
    declined = stage.message(routed("S-2", "please decline this"), routed_subject("kb"))
    published = {p.msg_id: p for p in stage.deliver(drafted, declined)}
    assert drafted.acked and declined.acked
    assert published["S-1:drafted"].subject == DRAFTED
    draft = messages.TicketEnvelope.model_validate_json(published["S-1:drafted"].payload).draft
    assert draft is not None and draft.answer == "It is on its way."
    hop = published["S-2:routed:llm_small"]
    assert hop.subject == routed_subject("llm_small")
    assert [a.handler for a in messages.TicketEnvelope.model_validate_json(hop.payload).attempts] == ["kb"]
    assert {c["ticket_id"]: c["amount_usd"] for c in stage.rows("cost_ledger")} == {
        "S-1": Decimal("0.020000"), "S-2": Decimal("0.010000")}


@HANDLERS
def test_a_redelivery_is_not_handled_or_charged_again(handler_class: type[PricedHandler]) -> None:
    handler = handler_class()
    stage = harness(handler)
    message = stage.message(routed("S-3"), routed_subject("kb"))
    first = stage.deliver(message)
    again = message.redelivered()
    assert sent(stage.deliver(again)) == sent(first), "the stored draft, same Nats-Msg-Id"
    assert again.acked
    assert handler.calls == ["S-3"], "the model is not asked twice"
    assert len(stage.rows("cost_ledger")) == 1 and len(stage.rows("decisions")) == 1


def test_a_local_handler_decides_inside_the_batch_transaction() -> None:
    handler = LocalPricedHandler()
    stage = harness(handler)
    readings = 0
    reading = stage.books.reading

    def counted_reading() -> object:
        nonlocal readings
        readings += 1
        return reading()

    stage.books.reading = counted_reading  # type: ignore[method-assign]
    published = stage.deliver(stage.message(routed("S-9"), routed_subject("kb")))
    assert [p.msg_id for p in published] == ["S-9:drafted"]
    assert readings == 0, "no connection of its own for the redelivery check"


def test_a_local_handler_that_fails_declines_with_the_error() -> None:
    class Broken(LocalPricedHandler):
        def handle_now(self, envelope: messages.TicketEnvelope) -> messages.Draft | Declined:
            raise RuntimeError("index missing")

    stage = harness(Broken())
    message = stage.message(routed("S-10"), routed_subject("kb"))
    published = {p.msg_id for p in stage.deliver(message)}
    assert message.acked and "S-10:routed:llm_small" in published
    [decision] = stage.rows("decisions", ticket_id="S-10")
    assert decision["output"]["kind"] == "error"
    assert "RuntimeError: index missing" in decision["reason"]


def test_a_poison_message_is_dead_lettered_without_holding_up_its_batch() -> None:
    handler = PricedHandler()
    stage = harness(handler)
    unrouted = stage.message(routed("S-4").model_copy(update={"route": None}),
                             routed_subject("kb"))
    good = stage.message(routed("S-5"), routed_subject("kb"))
    published = {p.msg_id: p for p in stage.deliver(unrouted, good)}
    assert unrouted.acked and good.acked
    assert "S-5:drafted" in published and f"deadletter:specialist:{unrouted.seq}" in published
    escalation = published["S-4:escalate"]
    assert escalation.subject == ESCALATION_REQUESTED
    assert messages.EscalationRequest.model_validate_json(escalation.payload).source_stage == "specialist"
    assert handler.calls == ["S-5"]
