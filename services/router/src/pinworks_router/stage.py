"""The router stage: apply the policy to each classified ticket and audit why."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.contracts import EscalationRequest, RouteDecision, TicketEnvelope
from pinworks_common.customer_state import recorded_states, state_reasons
from pinworks_common.db.records import record_accountability, record_decisions, stored_outputs
from pinworks_common.pricing import Price, default_prices
from pinworks_common.stage import (
    Delivery,
    Publication,
    Work,
    decode_model,
    envelope_publication,
    escalation_publication,
)
from pinworks_common.subjects import WORK_STREAM, Stage, attempt_key, routed_subject
from pinworks_router.budgets import allot
from pinworks_router.domain import route
from pinworks_router.metrics import observe_decisions
from pinworks_router.policy import Policy
from pinworks_router.rollout import PolicyHolder, ShadowHolder

HUMAN = "human"
SHADOW_STAGE = f"{Stage.ROUTER.value}-shadow"
"""Decision rows of the shadow policy: recorded beside the live decision, never acted on."""


class RouterStage:
    stage = Stage.ROUTER.value

    def __init__(self, policy: Policy | PolicyHolder,
                 prices: dict[str, Price] | None = None,
                 shadow: ShadowHolder | None = None) -> None:
        self.holder = policy if isinstance(policy, PolicyHolder) else PolicyHolder(policy)
        self.prices = default_prices() if prices is None else prices
        self.shadow = shadow or ShadowHolder()

    @property
    def policy(self) -> Policy:
        return self.holder.policy

    def decode(self, delivery: Delivery) -> TicketEnvelope:
        envelope: TicketEnvelope = decode_model(TicketEnvelope, delivery)
        if envelope.classification is None:
            raise ValueError("classified ticket carries no classification")
        return envelope

    async def apply(
        self, conn: AsyncConnection, work: Sequence[Work[TicketEnvelope]]
    ) -> list[Publication]:
        policy = self.holder.policy  # one version for the whole batch, even if a swap lands now
        keys = {item.value.ticket.ticket_id: attempt_key("route", item.value.attempt)
                for item in work}
        # a redelivered ticket already decided keeps its decision and is not charged again
        already = await stored_outputs(conn, self.stage, keys, keys)
        fresh: list[Work[TicketEnvelope]] = []
        seen: set[tuple[str, int]] = set()
        for item in work:
            ticket_id, attempt = item.value.ticket.ticket_id, item.value.attempt
            if (ticket_id, attempt) in seen or (
                    ticket_id in already and keys[ticket_id] == attempt_key("route", attempt)):
                continue
            seen.add((ticket_id, attempt))
            fresh.append(item)
        states = await recorded_states(conn, (item.value.ticket.ticket_id for item in work))
        evaluations, latencies = [], []
        for item in fresh:
            assert item.value.classification is not None
            started = time.perf_counter()
            evaluations.append(route(policy, item.value.ticket, item.value.classification,
                                     states.get(item.value.ticket.ticket_id)))
            latencies.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        allotments = await allot(
            conn, policy, [(i.value.ticket, e.decision) for i, e in zip(fresh, evaluations,
                                                                        strict=True)],
            self.prices, datetime.now(UTC))
        budget_ms = (time.perf_counter() - started) * 1000 / max(len(fresh), 1)
        decisions, accountability = [], []
        for item, evaluation, allotment, latency_ms in zip(
                fresh, evaluations, allotments, latencies, strict=True):
            envelope = item.value
            assert envelope.classification is not None
            decision = allotment.decision
            ticket_id = envelope.ticket.ticket_id
            decisions.append({
                "ticket_id": ticket_id,
                "stage": self.stage,
                "decision_key": attempt_key("route", envelope.attempt),
                "component": "router",
                "version": policy.version,
                "inputs": {
                    "intent": envelope.classification.intent,
                    "confidence": envelope.classification.confidence,
                    "out_of_scope": envelope.classification.out_of_scope,
                    "business_unit": envelope.ticket.business_unit,
                    "channel": envelope.ticket.channel,
                    "classifier_version": envelope.classification.model_version,
                    "customer_metadata": envelope.ticket.metadata,
                    "text_features": evaluation.features,
                },
                "output": {
                    **decision.model_dump(mode="json"),
                    "passed_over": evaluation.passed_over,
                    "rule_handler": evaluation.decision.handler,
                    "budget": allotment.budget,
                    "budget_exhausted": allotment.exhausted,
                },
                "reason": f"rule {decision.rule}: {decision.reason}",
                "cost_usd": Decimal(0),
                "latency_ms": latency_ms + budget_ms,
                "trace_id": item.trace_id,
            })
            action = f"route to {decision.handler}"
            if decision.handler != evaluation.decision.handler:
                action += f" (budget exhausted for {evaluation.decision.handler})"
            accountability.append({
                "ticket_id": ticket_id,
                "event_key": attempt_key("router:route", envelope.attempt),
                "actor_type": "component",
                "actor": "router",
                "action": action,
                "version": policy.version,
                "details": {"rule": decision.rule},
            })
        shadow = self.shadow.policy
        if shadow is not None:
            for item, allotment in zip(fresh, allotments, strict=True):
                assert item.value.classification is not None
                started = time.perf_counter()
                evaluation = route(shadow, item.value.ticket, item.value.classification,
                                   states.get(item.value.ticket.ticket_id))
                live, candidate = allotment.decision, evaluation.decision
                agrees = live.handler == candidate.handler
                decisions.append({
                    "ticket_id": item.value.ticket.ticket_id,
                    "stage": SHADOW_STAGE,
                    "decision_key": attempt_key("route-shadow", item.value.attempt),
                    "component": "router",
                    "version": shadow.version,
                    "inputs": {"live_policy": policy.version, "live_handler": live.handler,
                               "live_rule": live.rule},
                    "output": {**candidate.model_dump(mode="json"),
                               "passed_over": evaluation.passed_over, "agrees": agrees},
                    "reason": (f"shadow {'agrees' if agrees else 'disagrees'}: rule "
                               f"{candidate.rule} -> {candidate.handler} (live: {live.handler}); "
                               "not acted on"),
                    "cost_usd": Decimal(0),
                    "latency_ms": (time.perf_counter() - started) * 1000,
                    "trace_id": item.trace_id,
                })
        observe_decisions(await record_decisions(conn, decisions), self.stage)
        await record_accountability(conn, accountability)
        stored = await stored_outputs(conn, self.stage, keys, keys)
        publications = []
        for item in work:
            envelope = item.value
            decision = RouteDecision.model_validate(stored[envelope.ticket.ticket_id])
            routed = envelope.model_copy(update={"route": decision})
            if decision.handler == HUMAN:
                state = states.get(envelope.ticket.ticket_id)
                request = EscalationRequest(
                    envelope=routed, source_stage=self.stage,
                    reasons=[f"routed to a person by rule {decision.rule}: {decision.reason}",
                             *state_reasons(state)],
                )
                publications.append(escalation_publication(request, item.trace_headers))
                continue
            publications.append(envelope_publication(
                routed.model_dump_json().encode(),
                subject=routed_subject(decision.handler),
                stream=WORK_STREAM,
                ticket_id=envelope.ticket.ticket_id,
                step=attempt_key("routed", envelope.attempt),
                headers=item.trace_headers,
            ))
        return publications
