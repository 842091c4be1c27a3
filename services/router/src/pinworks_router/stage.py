"""The router stage: apply the policy to each classified ticket and audit why.

A ticket already routed (a redelivery) is not routed or charged against a budget again: the
ledger hands it on from its stored decision, under the same message id.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial

from pinworks_common.customer_state import recorded_states, state_reasons, state_ref
from pinworks_common.ledger import Ledger, keys, records
from pinworks_common.ledger.postgres import connection_of
from pinworks_common.pricing import Price, default_prices
from pinworks_common.stage import Delivery, Work, decode_model
from pinworks_contracts.messages import (
    CustomerState,
    EscalationRequest,
    RouteDecision,
    TicketEnvelope,
)
from pinworks_contracts.subjects import Stage, routed_message_id, routed_subject
from pinworks_router.budgets import Allotment, allot
from pinworks_router.domain import Evaluation, route
from pinworks_router.metrics import observe_decisions
from pinworks_router.policy import Policy
from pinworks_router.quality_guard import QualityGuard, guarded
from pinworks_router.rollout import PolicyHolder, ShadowHolder

HUMAN = "human"
SHADOW_STAGE = f"{Stage.ROUTER.value}-shadow"
"""Decision rows of the shadow policy: recorded beside the live decision, never acted on."""
COMPONENT = "router"


class RouterStage:
    stage = Stage.ROUTER.value

    def __init__(self, policy: Policy | PolicyHolder,
                 prices: dict[str, Price] | None = None,
                 shadow: ShadowHolder | None = None,
                 guard: QualityGuard | None = None) -> None:
        self.holder = policy if isinstance(policy, PolicyHolder) else PolicyHolder(policy)
        self.prices = default_prices() if prices is None else prices
        self.shadow = shadow or ShadowHolder()
        self.guard = guard

    @property
    def policy(self) -> Policy:
        return self.holder.policy

    def decode(self, delivery: Delivery) -> TicketEnvelope:
        envelope: TicketEnvelope = decode_model(TicketEnvelope, delivery)
        if envelope.classification is None:
            raise ValueError("classified ticket carries no classification")
        return envelope

    def ref(self, envelope: TicketEnvelope) -> records.DecisionRef:
        return records.DecisionRef(envelope.ticket.ticket_id, self.stage, keys.route(envelope.attempt))

    async def apply(self, ledger: Ledger, work: Sequence[Work[TicketEnvelope]]) -> records.Entries:
        policy = self.holder.policy  # one version for the whole batch, even if a swap lands now
        ids = {item.value.ticket.ticket_id for item in work}
        await ledger.decided([*(self.ref(item.value) for item in work), *map(state_ref, ids)])
        fresh = await ledger.undecided(work, lambda item: self.ref(item.value))
        states = await recorded_states(ledger, ids)
        evaluations, latencies = [], []
        for item in fresh:
            started = time.perf_counter()
            evaluations.append(self._route(policy, item.value, states))
            latencies.append((time.perf_counter() - started) * 1000)
        quality = [self._quality(policy, item.value) for item in fresh]
        started = time.perf_counter()
        allotments = await self._allot(ledger, policy, fresh, [
            guarded(evaluation.decision, reason)
            for evaluation, reason in zip(evaluations, quality, strict=True)])
        budget_ms = (time.perf_counter() - started) * 1000 / max(len(fresh), 1)
        entries = records.Entries(observers=[self._observe])
        for item, evaluation, allotment, reason, latency_ms in zip(
                fresh, evaluations, allotments, quality, latencies, strict=True):
            entries.decisions.append(self._decision(policy, item, evaluation, allotment, reason,
                                                    latency_ms + budget_ms))
            entries.accountability.append(_accountability(policy, item.value, evaluation,
                                                          allotment, reason))
        entries.decisions += self._shadow_decisions(policy, fresh, allotments, states)
        entries.handoffs = [
            records.HandOff(self.ref(item.value),
                    partial(self._hand_off, item, states.get(item.value.ticket.ticket_id)))
            for item in work
        ]
        return entries

    @staticmethod
    def _route(policy: Policy, envelope: TicketEnvelope,
               states: dict[str, CustomerState]) -> Evaluation:
        assert envelope.classification is not None
        return route(policy, envelope.ticket, envelope.classification,
                     states.get(envelope.ticket.ticket_id))

    def _quality(self, policy: Policy, envelope: TicketEnvelope) -> str | None:
        """Why the quality guard sends this ticket to a person (its scope is tightened)."""
        if self.guard is None or envelope.classification is None:
            return None
        return self.guard.reason(policy, envelope.ticket, envelope.classification)

    async def _allot(self, ledger: Ledger, policy: Policy, fresh: Sequence[Work[TicketEnvelope]],
                     decisions: Sequence[RouteDecision]) -> list[Allotment]:
        """Budgets take the batch's decisions in order (their counters are Postgres rows); a
        policy without budgets leaves every decision as it is."""
        if not policy.budgets:
            return [Allotment(decision) for decision in decisions]
        items = [(item.value.ticket, decision)
                 for item, decision in zip(fresh, decisions, strict=True)]
        return await allot(connection_of(ledger), policy, items, self.prices, datetime.now(UTC))

    def _decision(self, policy: Policy, item: Work[TicketEnvelope], evaluation: Evaluation,
                  allotment: Allotment, quality: str | None,
                  latency_ms: float) -> records.Decision:
        envelope, decision = item.value, allotment.decision
        assert envelope.classification is not None
        return records.Decision(
            envelope.ticket.ticket_id, self.stage, keys.route(envelope.attempt), COMPONENT,
            policy.version,
            inputs={
                "intent": envelope.classification.intent,
                "confidence": envelope.classification.confidence,
                "out_of_scope": envelope.classification.out_of_scope,
                "business_unit": envelope.ticket.business_unit,
                "channel": envelope.ticket.channel,
                "classifier_version": envelope.classification.model_version,
                "customer_metadata": envelope.ticket.metadata,
                "text_features": evaluation.features,
            },
            output={
                **decision.model_dump(mode="json"),
                "passed_over": evaluation.passed_over,
                "rule_handler": evaluation.decision.handler,
                "budget": allotment.budget,
                "budget_exhausted": allotment.exhausted,
                "quality_guard": quality,
            },
            reason=decision_reason(decision),
            latency_ms=latency_ms, trace_id=item.trace_id,
        )

    def _shadow_decisions(self, policy: Policy, fresh: Sequence[Work[TicketEnvelope]],
                          allotments: Sequence[Allotment],
                          states: dict[str, CustomerState]) -> list[records.Decision]:
        """The shadow policy's decision beside each live one: recorded, never acted on."""
        shadow = self.shadow.policy
        if shadow is None:
            return []
        decisions = []
        for item, allotment in zip(fresh, allotments, strict=True):
            started = time.perf_counter()
            evaluation = self._route(shadow, item.value, states)
            live, candidate = allotment.decision, evaluation.decision
            agrees = live.handler == candidate.handler
            decisions.append(records.Decision(
                item.value.ticket.ticket_id, SHADOW_STAGE, keys.route_shadow(item.value.attempt),
                COMPONENT, shadow.version,
                inputs={"live_policy": policy.version, "live_handler": live.handler,
                        "live_rule": live.rule},
                output={**candidate.model_dump(mode="json"),
                        "passed_over": evaluation.passed_over, "agrees": agrees},
                reason=(f"shadow {'agrees' if agrees else 'disagrees'}: rule "
                        f"{candidate.rule} -> {candidate.handler} (live: {live.handler}); "
                        "not acted on"),
                latency_ms=(time.perf_counter() - started) * 1000, trace_id=item.trace_id,
            ))
        return decisions

    def _hand_off(self, item: Work[TicketEnvelope], state: CustomerState | None,
                  stored: dict[str, object]) -> records.Publication:
        """The stored route: to the chosen specialist handler, or to a person."""
        envelope = item.value
        decision = RouteDecision.model_validate(stored)
        routed = envelope.model_copy(update={"route": decision})
        if decision.handler == HUMAN:
            return records.escalation_publication(EscalationRequest(
                envelope=routed, source_stage=self.stage,
                reasons=[f"routed to a person by rule {decision.rule}: {decision.reason}",
                         *state_reasons(state)],
            ), item.trace_headers)
        return records.handoff_publication(
            routed, subject=routed_subject(decision.handler), headers=item.trace_headers,
            msg_id=routed_message_id(envelope.ticket.ticket_id, envelope.attempt))

    def _observe(self, recorded: records.Recorded) -> None:
        observe_decisions(recorded.new_decisions, self.stage)


def decision_reason(decision: RouteDecision) -> str:
    """The routing decision row's `reason`: the rule and the handler. Why the rule sends the
    ticket there (the rule's configured reason, with what a budget or the quality guard changed)
    is the output's `reason`, as the hand-off publishes it, stored once (the audit and the
    console show it beside this)."""
    return f"rule {decision.rule} -> {decision.handler}"


def _accountability(policy: Policy, envelope: TicketEnvelope, evaluation: Evaluation,
                    allotment: Allotment, quality: str | None) -> records.AccountabilityEntry:
    decision = allotment.decision
    action = f"route to {decision.handler}"
    if quality is not None and evaluation.decision.handler != HUMAN:
        action += f" (quality guard: its scope is tightened, not {evaluation.decision.handler})"
    elif decision.handler != evaluation.decision.handler:
        action += f" (budget exhausted for {evaluation.decision.handler})"
    details: dict[str, object] = {"rule": decision.rule}
    if quality is not None:
        details["quality_guard"] = quality
    return records.AccountabilityEntry(
        envelope.ticket.ticket_id, keys.event(COMPONENT, envelope.attempt, "route"), COMPONENT,
        action, policy.version, details)
