"""The router's step of `pinworks bench`'s in-process baseline: the configured policy's rules on
a batch of classified envelopes, without NATS or Postgres (budgets and the quality guard read
Postgres, so they are not in it).

Found through the entry-point group `pinworks.inprocess` (the CLI imports no service)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pinworks_contracts.messages import TicketEnvelope


def route_step() -> Callable[[Sequence[TicketEnvelope]], list[TicketEnvelope]]:
    """Load the policy once; the step routes a batch by its first matching rule."""
    from pinworks_router.domain import route
    from pinworks_router.policy import load_policy
    from pinworks_router.settings import RouterSettings

    policy = load_policy(RouterSettings().policy_file)

    def step(batch: Sequence[TicketEnvelope]) -> list[TicketEnvelope]:
        routed = []
        for envelope in batch:
            assert envelope.classification is not None
            evaluation = route(policy, envelope.ticket, envelope.classification,
                               envelope.customer_state)
            routed.append(envelope.model_copy(update={"route": evaluation.decision}))
        return routed

    return step
