import json
from datetime import UTC, datetime
from types import SimpleNamespace

from pinworks_common.stage import Delivery, escalate_on_dead_letter
from pinworks_contracts.messages import (
    Classification,
    EscalationRequest,
    IntentScore,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_contracts.subjects import ESCALATION_REQUESTED


def delivery(data: bytes) -> Delivery:
    metadata = SimpleNamespace(sequence=SimpleNamespace(stream=7), num_delivered=5)
    headers = {"Nats-Msg-Id": "T-9:routed", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    return Delivery(SimpleNamespace(data=data, subject="s", headers=headers,  # type: ignore[arg-type]
                                    metadata=metadata))


def test_a_dead_lettered_ticket_is_escalated_with_the_error() -> None:
    envelope = TicketEnvelope(
        ticket=TicketSubmission(ticket_id="T-9", business_unit="retail", body="hi"),
        trace_id="a" * 32, received_at=datetime(2026, 1, 1, tzinfo=UTC),
        classification=Classification(intent="card_arrival", confidence=0.9, out_of_scope=False,
                                      model_version="m", alternatives=[
                                          IntentScore(intent="card_arrival", score=0.9)]))
    [publication] = escalate_on_dead_letter("verifier")(
        delivery(envelope.model_dump_json().encode()), "KeyError: 'x'")
    assert publication.subject == ESCALATION_REQUESTED
    assert publication.msg_id == "T-9:escalate"
    assert "Nats-Msg-Id" not in publication.headers
    assert publication.headers["traceparent"].startswith("00-" + "a" * 32)
    request = EscalationRequest.model_validate(json.loads(publication.payload))
    assert request.reasons == ["verifier failed after 5 deliveries: KeyError: 'x'"]


def test_an_undecodable_message_cannot_be_escalated() -> None:
    assert escalate_on_dead_letter("router")(delivery(b"garbage"), "bad") == []
