"""AsyncAPI documents generated from the FastStream apps.

Subscribers take raw bytes (so a malformed ticket can be rejected rather than crash the
handler); the payload schema they document is filled in from the contract models here. Every
message also documents the two NATS headers the platform relies on (`Nats-Msg-Id` for
JetStream de-duplication, `traceparent` for the ticket's trace) and carries an example built
from the contract models, so an example that drifts from its schema fails to build.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from faststream import FastStream
from pydantic import BaseModel

HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "description": (
                "JetStream de-duplication key: a message with an id the stream already holds "
                "(within 30 minutes) is stored once. Submitters should send one per submission "
                "(the CLI uses `<ticket_id>:submitted:<payload hash>`, so a corrected payload is "
                "not dropped); pinworks' own publishes use `<ticket_id>:<step>` "
                "(`@<attempt>` after an agent sends a ticket back), and dead letters "
                "`deadletter:<stage>:<stream sequence>`, so a redelivery never publishes twice."),
        },
        "traceparent": {
            "type": "string",
            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": (
                "W3C trace context. A submitter's trace is continued; without one the "
                "classifier starts a trace, and every later message about the ticket carries it "
                "(its trace id is the outcome's `trace_id`)."),
        },
    },
}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
WHEN = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def _examples() -> dict[str, dict[str, Any]]:
    """One example payload per contract model (outcomes per status), validated by pydantic."""
    from pinworks_contracts import messages as c
    from pinworks_contracts.subjects import outcome_message_id

    ticket = c.TicketSubmission(
        ticket_id="T-1001", business_unit="retail", channel="email", customer_id="C-42",
        subject="Card not arrived",
        body="I ordered a new debit card two weeks ago and it still has not arrived.",
        metadata={"tier": "gold"})
    classification = c.Classification(
        intent="card_arrival", confidence=0.97, out_of_scope=False,
        alternatives=[c.IntentScore(intent="card_arrival", score=0.97),
                      c.IntentScore(intent="card_delivery_estimate", score=0.02)],
        model_version="intent-cascade-8927d77b")
    route = c.RouteDecision(handler="template", rule="confident-template",
                            reason="confidence 0.97 >= 0.55", policy_version="policy-3c1d9e0a",
                            fallbacks=["kb", "human"])
    draft = c.Draft(handler="template", handler_version="templates-1a2b3c4d",
                    answer="Hello, new cards arrive within 7 working days...",
                    cost_usd=Decimal("0.000010"))
    envelope = c.TicketEnvelope(ticket=ticket, trace_id=TRACE_ID, received_at=WHEN,
                                classification=classification, route=route, draft=draft)
    escalated_envelope = envelope.model_copy(update={"draft": None, "route": route.model_copy(
        update={"handler": "human", "rule": "security-to-person",
                "reason": "security-sensitive intents go to a person", "fallbacks": []})})
    outcome = {
        "resolved": c.published_outcome(c.Outcome(
            ticket_id="T-1001", status=c.OutcomeStatus.RESOLVED, business_unit="retail",
            intent="card_arrival", confidence=0.97, handler="template",
            answer="Hello, new cards arrive within 7 working days...",
            cost_usd=Decimal("0.000110"), resolved_by="automation", trace_id=TRACE_ID,
            decided_at=WHEN)),
        "escalated": c.published_outcome(c.Outcome(
            ticket_id="T-1001", status=c.OutcomeStatus.ESCALATED, business_unit="retail",
            intent="card_arrival", confidence=0.97, handler="human",
            reasons=["security-sensitive intents go to a person"],
            cost_usd=Decimal("0.000100"), resolved_by="automation", trace_id=TRACE_ID,
            decided_at=WHEN)),
        "rejected": c.published_outcome(c.Outcome(
            ticket_id="T-1002", status=c.OutcomeStatus.REJECTED, business_unit="retail",
            reasons=["body: String should have at least 1 character"],
            cost_usd=Decimal(0), resolved_by="automation", trace_id=TRACE_ID,
            decided_at=WHEN)),
    }
    return {
        "TicketSubmission": {"payload": ticket, "msg_id": "T-1001:submitted:9f86d081884c7d65"},
        "TicketEnvelope": {"payload": envelope, "msg_id": "T-1001:classified"},
        "EscalationRequest": {
            "payload": c.EscalationRequest(envelope=escalated_envelope, source_stage="router",
                                           reasons=["security-sensitive intents go to a person"]),
            "msg_id": "T-1001:escalate"},
        "DeadLetter": {
            "payload": c.DeadLetter(
                stage="router", subject="pinworks.work.classified", stream_sequence=4711,
                deliveries=5, error="ValidationError: ticket: Field required",
                ticket_id=None, payload_excerpt='{"classification": {}}'),
            "msg_id": "deadletter:router:4711"},
        **{f"Outcome:{status}": {"payload": value, "msg_id": outcome_message_id(
            value.ticket_id, "rejected:17" if status == "rejected" else "automation",
            "q3xBvN0sQeK6mYt2Lw9aHg")}  # the outcome row's random nonce (an example)
           for status, value in outcome.items()},
    }


def _example(schema_name: str, address: str, examples: dict[str, dict[str, Any]]
             ) -> dict[str, Any] | None:
    key = schema_name
    if schema_name == "Outcome":
        status = next((part for part in address.split(".") if f"Outcome:{part}" in examples),
                      "resolved")  # tickets.outcome.<status>.<platform>
        key = f"Outcome:{status}"
    found = examples.get(key)
    if found is None:
        return None
    return {
        "name": key.replace(":", "-").lower(),
        "headers": {"Nats-Msg-Id": found["msg_id"], "traceparent": TRACEPARENT},
        "payload": found["payload"].model_dump(mode="json", exclude_none=True),
    }


def asyncapi_document(app: FastStream) -> dict[str, Any]:
    assert app.schema is not None
    document: dict[str, Any] = app.schema.to_specification().to_jsonable()
    payloads: dict[str, type[BaseModel]] = getattr(app, "pinworks_payloads", {})
    messages = document.setdefault("components", {}).setdefault("messages", {})
    schemas = document["components"].setdefault("schemas", {})
    for title, model in payloads.items():
        for name, message in messages.items():
            if name.startswith(f"{title}:"):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for definition_name, definition in schema.pop("$defs", {}).items():
                    schemas[definition_name] = definition
                schemas[model.__name__] = schema
                message["payload"] = {"$ref": f"#/components/schemas/{model.__name__}"}
    schemas["PinworksHeaders"] = HEADERS_SCHEMA
    examples = _examples()
    address_of = {
        message_ref["$ref"].rsplit("/", 1)[-1]: channel["address"]
        for channel in document.get("channels", {}).values()
        for message_ref in channel.get("messages", {}).values()
    }
    for name, message in messages.items():
        message["headers"] = {"$ref": "#/components/schemas/PinworksHeaders"}
        schema_name = message.get("payload", {}).get("$ref", "").rsplit("/", 1)[-1]
        example = _example(schema_name, address_of.get(name, ""), examples)
        if example is not None:
            message["examples"] = [example]
    return document
