"""Where a ticket goes after a handler's call: the draft to the verifier, or down the fallback chain.

Pure functions, no I/O: the stage records what :func:`settle` returns as the decision output
and publishes what :func:`publication_for` builds from the *stored* output, so a redelivery
republishes the first decision with the same `Nats-Msg-Id`.
"""

from __future__ import annotations

from typing import Any

from pinworks_common.ledger import Publication, escalation_publication, handoff_publication
from pinworks_contracts.messages import (
    Draft,
    EscalationRequest,
    HandlerAttempt,
    RouteDecision,
    TicketEnvelope,
)
from pinworks_contracts.subjects import (
    DRAFTED,
    Stage,
    drafted_message_id,
    hop_message_id,
    routed_subject,
)
from pinworks_specialists.handlers import Declined

HUMAN = "human"


def current_hops(envelope: TicketEnvelope) -> list[HandlerAttempt]:
    """The fallback hops of the ticket's current automation attempt (an agent may have sent
    the ticket back to automation after earlier hops)."""
    return [a for a in envelope.attempts if a.automation_attempt == envelope.attempt]


def next_handler(route: RouteDecision | None, current: str,
                 attempts: list[HandlerAttempt]) -> str:
    """The next handler in the route's chain after `current`, skipping any already tried;
    `human` when the chain is exhausted (or names a person next)."""
    chain = [route.handler, *route.fallbacks] if route else []
    after = chain[chain.index(current) + 1:] if current in chain else chain
    tried = {attempt.handler for attempt in attempts} | {current}
    for candidate in after:
        if candidate == HUMAN:
            return HUMAN
        if candidate not in tried:
            return candidate
    return HUMAN


def settle(envelope: TicketEnvelope, handler: str, version: str,
           result: Draft | Declined) -> dict[str, Any]:
    """The decision output for one handler call (stored as-is in `decisions.output`)."""
    if isinstance(result, Draft):
        return {"draft": result.model_dump(mode="json")}
    hop = HandlerAttempt(handler=handler, handler_version=version, result=result.kind,
                         reason=result.reason, cost_usd=result.cost_usd,
                         automation_attempt=envelope.attempt)
    return {
        "declined": result.reason,
        "kind": result.kind,
        "next": next_handler(envelope.route, handler, current_hops(envelope)),
        "hop": hop.model_dump(mode="json"),
        "details": result.details,
    }


def publication_for(envelope: TicketEnvelope, output: dict[str, Any],
                    headers: dict[str, str], handler: str = "specialist") -> Publication:
    """The hand-off for a stored decision output: verifier, next handler, or a person."""
    ticket_id = envelope.ticket.ticket_id
    if "draft" not in output and "hop" not in output:  # recorded before fallbacks existed
        request = EscalationRequest(envelope=envelope, source_stage=Stage.SPECIALIST.value,
                                    reasons=[f"{handler} declined: {output['declined']}"])
        return escalation_publication(request, headers)
    if "draft" in output:
        drafted = envelope.model_copy(update={"draft": Draft.model_validate(output["draft"])})
        return handoff_publication(drafted, subject=DRAFTED, headers=headers,
                                   msg_id=drafted_message_id(ticket_id, envelope.attempt))
    hop = HandlerAttempt.model_validate(output["hop"])
    passed_on = envelope.model_copy(update={"attempts": [*envelope.attempts, hop]})
    target = output["next"]
    if target != HUMAN:
        return handoff_publication(passed_on, subject=routed_subject(target), headers=headers,
                                   msg_id=hop_message_id(ticket_id, target, envelope.attempt))
    reasons = [f"{a.handler} {a.result}: {a.reason}" for a in current_hops(passed_on)]
    reasons.append("no automated handler left in the route's fallback chain; a person must answer")
    request = EscalationRequest(envelope=passed_on, source_stage=Stage.SPECIALIST.value,
                                reasons=reasons)
    return escalation_publication(request, headers)
