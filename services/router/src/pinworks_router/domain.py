"""Rule evaluation without I/O: the first matching rule wins; every rule passed over says why.

A run of consecutive rules whose `intents` leave out the ticket's intent (the calibrated
policy's per-intent error-budget gates) cannot apply to it: the run is one passed-over entry
naming its first and last rule and how many it holds, not one entry per rule. Each rule's own
configured text is in the stored policy (`routing_policies`, by the decision's version).
"""

from __future__ import annotations

from dataclasses import dataclass

from pinworks_contracts.messages import (
    Classification,
    CustomerState,
    RouteDecision,
    TicketSubmission,
)
from pinworks_router.features import TicketFeatures
from pinworks_router.policy import Conditions, Policy, Rule


class RuleEvaluationError(RuntimeError):
    """The evaluation contradicts itself (a rule passed over whose conditions hold): a bug,
    never a verdict on the ticket."""


PassedOver = dict[str, str | int]
"""`rule` and `why`; a run of rules excluding the intent also has `through` (its last rule)
and `rules` (how many)."""


@dataclass(frozen=True)
class Evaluation:
    decision: RouteDecision
    passed_over: list[PassedOver]
    features: dict[str, object]
    """Text features the rules read (sentiment, urgency), for the audit."""


def mismatch(
    conditions: Conditions, policy: Policy, ticket: TicketSubmission, cls: Classification,
    features: TicketFeatures | None = None,
) -> str | None:
    """Why the conditions do not hold for this ticket, or None when they all do.

    Cheap conditions are checked first; sentiment is computed only when a rule still needs it.
    """
    features = features or TicketFeatures(ticket)
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
    for key, allowed in (conditions.metadata or {}).items():
        if key not in ticket.metadata:
            return f"metadata has no {key!r} (rule needs one of {allowed})"
        value = ticket.metadata[key]
        if _as_text(value) not in {_as_text(a) for a in allowed}:
            return f"metadata {key}={value!r} not in {allowed}"
    if conditions.keywords is not None and not any(
        kw.search(features.text) for kw in conditions.keyword_res
    ):
        return f"none of the keywords {conditions.keywords} in the text"
    if conditions.patterns is not None and not any(
        p.search(features.text) for p in conditions.pattern_res
    ):
        return f"none of the patterns {conditions.patterns} matches the text"
    if conditions.urgency is not None and features.urgency not in conditions.urgency:
        return f"urgency {features.urgency} not in {conditions.urgency}"
    if conditions.customer_state is not None and not set(conditions.customer_state) & set(
        features.customer_state
    ):
        found = ", ".join(features.customer_state) or "no signal"
        return f"customer state has {found}, rule needs one of {conditions.customer_state}"
    if conditions.min_sentiment is not None and features.sentiment < conditions.min_sentiment:
        return f"sentiment {features.sentiment:.3f} below {conditions.min_sentiment}"
    if conditions.max_sentiment is not None and features.sentiment > conditions.max_sentiment:
        return f"sentiment {features.sentiment:.3f} above {conditions.max_sentiment}"
    return None


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).strip().casefold()


def route(policy: Policy, ticket: TicketSubmission, classification: Classification,
          customer_state: CustomerState | None = None) -> Evaluation:
    """`customer_state` is the classifier stage's recorded reading (read anew when absent)."""
    passed_over: list[PassedOver] = []
    excluding: list[Rule] = []
    features = TicketFeatures(ticket, customer_state)
    intent = classification.intent
    for rule in policy.rules:
        intents = rule.when.intents
        if intents is not None and intent not in intents:
            excluding.append(rule)
            continue
        _pass_over(excluding, policy, ticket, classification, features, passed_over)
        why_not = mismatch(rule.when, policy, ticket, classification, features)
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
        return Evaluation(decision, passed_over, features.used)
    _pass_over(excluding, policy, ticket, classification, features, passed_over)
    decision = RouteDecision(
        handler="human",
        rule="<no rule matched>",
        reason="no policy rule matched; a person decides",
        policy_version=policy.version,
        fallbacks=[],
    )
    return Evaluation(decision, passed_over, features.used)


def _pass_over(run: list[Rule], policy: Policy, ticket: TicketSubmission, cls: Classification,
               features: TicketFeatures, passed_over: list[PassedOver]) -> None:
    """Record (and empty) a run of consecutive rules whose intents leave out the ticket's: a
    lone rule with its own reason, as any other, a longer run as one entry."""
    if len(run) == 1:
        why_not = mismatch(run[0].when, policy, ticket, cls, features)
        if why_not is None:
            raise RuleEvaluationError(
                f"rule {run[0].name} was passed over as its intents leave out {cls.intent}, "
                "yet its conditions hold")
        passed_over.append({"rule": run[0].name, "why": why_not})
    elif run:
        first, last = run[0].name, run[-1].name
        passed_over.append({
            "rule": first, "through": last, "rules": len(run),
            "why": f"intent {cls.intent} not in the intents of these {len(run)} rules, "
                   f"{first} through {last}",
        })
    run.clear()
