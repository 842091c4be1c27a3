"""Composition root of the router service."""

from __future__ import annotations

from functools import partial

from faststream import FastStream

from pinworks_common.ledger import Books
from pinworks_common.service import build_runtime, mount_stage, service_app
from pinworks_contracts import subjects
from pinworks_contracts.messages import EscalationRequest, TicketEnvelope
from pinworks_router.metrics import poll_budgets
from pinworks_router.policy import load_policy
from pinworks_router.policy_trust import PolicyRecords
from pinworks_router.quality_guard import QualityGuard
from pinworks_router.rollout import (
    PolicyHolder,
    PolicyWatcher,
    ShadowHolder,
    policy_bucket,
    replica_name,
)
from pinworks_router.settings import RouterSettings
from pinworks_router.stage import RouterStage


def create_app(settings: RouterSettings | None = None, books: Books | None = None) -> FastStream:
    """The router app; `books` stands in for its Postgres ledger."""
    settings = settings or RouterSettings()
    holder = PolicyHolder(load_policy(settings.policy_file))
    shadow = ShadowHolder(load_policy(settings.shadow_policy_file)
                          if settings.shadow_policy_file else None)
    runtime = build_runtime("router", settings)
    guard = QualityGuard(runtime.engine if settings.quality_guard and books is None else None,
                         holder, settings.quality_refresh_seconds, settings.quality_min_reviews)
    mount_stage(
        runtime, RouterStage(holder, settings.prices, shadow, guard), books,
        subject=subjects.CLASSIFIED, stream=subjects.WORK_STREAM,
        payload=TicketEnvelope, escalate_dead_letters=True,
        description="Classified tickets; the policy's first matching rule picks the handler.",
    )
    runtime.broker.publisher(
        subjects.routed_subject("{handler}"), title="routed", schema=TicketEnvelope,
        description="Ticket with its route, for the chosen specialist handler.",
    )
    runtime.broker.publisher(
        subjects.ESCALATION_REQUESTED, title="escalate", schema=EscalationRequest,
        description="Ticket the policy sends to a person.",
    )
    runtime.poller.add("budgets", partial(poll_budgets, runtime.engine))
    app = service_app(
        runtime, description="Routes each classified ticket by the first matching policy rule.",
        on_stopping=[guard.stop],
    )
    app.on_startup(guard.start)  # before the subscriptions consume: the first batch is guarded
    if settings.policy_watch:
        watchers: list[PolicyWatcher] = []

        async def watch_policy() -> None:
            # runs after the broker connected and before the subscriptions consume anything
            kv = await policy_bucket(runtime.broker.config.connection_state.stream,
                                     settings.policy_bucket)
            replica = replica_name()
            records = PolicyRecords(runtime.engine, replica)  # verified with the router's role
            for watcher in (
                PolicyWatcher(kv, holder, records, settings.policy_bucket,
                              subjects.ROUTER_POLICY_KEY, replica, settings.policy_recheck_seconds),
                PolicyWatcher(kv, shadow, records, settings.policy_bucket,
                              subjects.ROUTER_SHADOW_KEY, replica, settings.policy_recheck_seconds),
            ):
                await watcher.start()
                watchers.append(watcher)

        async def stop_watching() -> None:
            for watcher in watchers:
                await watcher.stop()

        app.on_startup(watch_policy)
        app.on_shutdown(stop_watching)
    return app
