"""The quality guard: a router replica's view of which scopes automation may not answer.

Every `ROUTER_QUALITY_REFRESH_SECONDS` the guard estimates each business unit's and policy
intent group's wrong-answer rate from the agents' verdicts on automatic answers
(`pinworks_common.quality`), against the live policy's `error_budget`; a scope with at least
`ROUTER_QUALITY_MIN_REVIEWS` verdicts whose upper bound passes its budget is tightened in
Postgres (`quality_scopes`, with a `quality_events` row, once however many replicas race) and
logged. It then reads every tightened scope. Routing a ticket of a tightened scope sends it to a
person, with the tightening's reason in its route decision (the audit) and its accountability
row; only `pinworks quality loosen` lets automation answer it again. A policy without an
`error_budget` tightens nothing new (scopes tightened before stay tightened).

A refresh that fails (Postgres away) keeps the last view and is logged; the next one retries.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.background import BackgroundTask
from pinworks_common.quality import store
from pinworks_common.quality.estimate import Budgets, Limit, ScopeKind
from pinworks_contracts.messages import Classification, RouteDecision, TicketSubmission
from pinworks_router.policy import Policy
from pinworks_router.rollout import PolicyHolder

log = logging.getLogger("pinworks.router.quality")
HUMAN = "human"


def budgets_of(policy: Policy) -> Budgets | None:
    """The policy's error budget as the guard reads it (None: the policy has none)."""
    budget = policy.error_budget
    if budget is None:
        return None

    def limit(own: float, confidence: float | None) -> Limit:
        return Limit(own, confidence or budget.confidence)

    return Budgets(
        default=Limit(budget.max_wrong_rate, budget.confidence),
        business_units={name: limit(b.max_wrong_rate, b.confidence)
                        for name, b in budget.business_units.items()},
        intent_groups={name: limit(b.max_wrong_rate, b.confidence)
                       for name, b in budget.intent_groups.items()},
        groups=dict(policy.intent_groups))


def tightened_reason(tightened: dict[tuple[ScopeKind, str], str], policy: Policy,
                     ticket: TicketSubmission, classification: Classification) -> str | None:
    """Why this ticket's scope may not be answered automatically, or None."""
    reason = tightened.get((ScopeKind.business_unit, ticket.business_unit))
    if reason is not None:
        return reason
    for group, intents in sorted(policy.intent_groups.items()):
        if classification.intent in intents:
            reason = tightened.get((ScopeKind.intent_group, group))
            if reason is not None:
                return reason
    return None


def guarded(decision: RouteDecision, reason: str | None) -> RouteDecision:
    """The decision, or a person's when the ticket's scope is tightened."""
    if reason is None or decision.handler == HUMAN:
        return decision
    return decision.model_copy(update={
        "handler": HUMAN, "fallbacks": [],
        "reason": f"{decision.reason}; {reason} (instead of {decision.handler})"})


class QualityGuard:
    def __init__(self, engine: AsyncEngine | None, holder: PolicyHolder,
                 refresh_seconds: float = 10.0, min_reviews: int = 30) -> None:
        self.engine = engine
        self.holder = holder
        self.refresh_seconds = refresh_seconds
        self.min_reviews = min_reviews
        self.tightened: dict[tuple[ScopeKind, str], str] = {}
        self._task = BackgroundTask("quality-guard")

    def reason(self, policy: Policy, ticket: TicketSubmission,
               classification: Classification) -> str | None:
        return tightened_reason(self.tightened, policy, ticket, classification)

    async def refresh(self) -> None:
        """Judge the scopes by the live policy's budget, then read every tightened scope."""
        if self.engine is None:
            return
        budgets = budgets_of(self.holder.policy)
        async with self.engine.begin() as conn:
            if budgets is not None:
                _, newly = await store.evaluate(conn, budgets, self.min_reviews)
                for estimate in newly:
                    log.warning("quality guard: tightened %s; its tickets go to people until "
                                "`pinworks quality loosen %s %s`", estimate.summary(),
                                estimate.kind.value, estimate.name)
            tightened = await store.tightened(conn)
        for key in tightened.keys() - self.tightened.keys():
            log.info("quality guard: routing %s %s to people: %s", key[0].value, key[1],
                     tightened[key])
        for key in self.tightened.keys() - tightened.keys():
            log.info("quality guard: %s %s loosened; automation answers it again", *key)
        self.tightened = tightened

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("quality guard refresh failed; keeping %d tightened scope(s)",
                              len(self.tightened))
            await asyncio.sleep(self.refresh_seconds)

    async def start(self) -> None:
        """One refresh before the first batch is routed, then the loop."""
        if self.engine is None or self._task.running:
            return
        try:
            await self.refresh()
        except Exception:
            log.exception("quality guard: first refresh failed; retrying every %ss",
                          self.refresh_seconds)
        self._task.start(self._loop())

    async def stop(self) -> None:
        await self._task.stop()
