"""Rule evaluation without I/O: the first matching rule wins; every rule passed over says why."""

from __future__ import annotations

from dataclasses import dataclass

from pinworks_common.contracts import Classification, RouteDecision, TicketSubmission
from pinworks_router.policy import Conditions, Policy


@dataclass(frozen=True)
class Evaluation:
    decision: RouteDecision
    passed_over: list[dict[str, str]]


def mismatch(
    conditions: Conditions, policy: Policy, ticket: TicketSubmission, cls: Classification
) -> str | None:
    """Why the conditions do not hold for this ticket, or None when they all do."""
    if conditions.out_of_scope is not None and cls.out_of_scope != conditions.out_of_scope:
        return f"out_of_scope is {cls.out_of_scope}, rule needs {conditions.out_of_scope}"
    if conditions.intents is not None and cls.intent not in conditions.intents:
        return f"intent {cls.intent} not in {conditions.intents}"
    if conditions.intent_groups is not None and not any(
        cls.intent in policy.intent_groups[group] for group in conditions.intent_groups
    ):
        return f"intent {cls.intent} not in groups {conditions.intent_groups}"
    if conditions.min_confidence is not None and cls.confidence < conditions.min_confidence:
        return f"confidence {cls.confidence:.3f} below {conditions.min_confidence}"
    if conditions.max_confidence is not None and cls.confidence > conditions.max_confidence:
        return f"confidence {cls.confidence:.3f} above {conditions.max_confidence}"
    if conditions.business_units is not None and ticket.business_unit not in conditions.business_units:
        return f"business unit {ticket.business_unit} not in {conditions.business_units}"
    if conditions.channels is not None and ticket.channel not in conditions.channels:
        return f"channel {ticket.channel} not in {conditions.channels}"
    return None


def route(policy: Policy, ticket: TicketSubmission, classification: Classification) -> Evaluation:
    passed_over: list[dict[str, str]] = []
    for rule in policy.rules:
        why_not = mismatch(rule.when, policy, ticket, classification)
        if why_not is not None:
            passed_over.append({"rule": rule.name, "why": why_not})
            continue
        decision = RouteDecision(
            handler=rule.handler,
            rule=rule.name,
            reason=rule.reason or f"rule {rule.name} matched",
            policy_version=policy.version,
            fallbacks=list(rule.fallbacks),
        )
        return Evaluation(decision, passed_over)
    decision = RouteDecision(
        handler="human",
        rule="<no rule matched>",
        reason="no policy rule matched; a person decides",
        policy_version=policy.version,
        fallbacks=[],
    )
    return Evaluation(decision, passed_over)
