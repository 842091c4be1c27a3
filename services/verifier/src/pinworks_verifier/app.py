"""Composition root of the verifier service."""

from __future__ import annotations

from faststream import FastStream

from pinworks_common.ledger import Books
from pinworks_common.service import build_runtime, make_publisher, service_app, subscribe_stage
from pinworks_common.stage import StageRunner, escalate_on_dead_letter
from pinworks_contracts.messages import EscalationRequest, Outcome, TicketEnvelope
from pinworks_contracts.subjects import (
    DRAFTED,
    ESCALATION_REQUESTED,
    WORK_STREAM,
    OutcomeStatus,
    Stage,
    outcome_subject,
)
from pinworks_verifier.factory import build_checks
from pinworks_verifier.settings import VerifierSettings
from pinworks_verifier.stage import VerifierStage


def create_app(settings: VerifierSettings | None = None, books: Books | None = None) -> FastStream:
    """The verifier app; `books` replaces the Postgres ledger (the component tests' in-memory
    one)."""
    settings = settings or VerifierSettings()
    runtime = build_runtime("verifier", settings)
    stage = VerifierStage(build_checks(settings))
    runner = StageRunner(
        stage, books or runtime.engine, make_publisher(runtime.broker),
        max_deliveries=settings.max_deliveries,
        on_dead_letter=escalate_on_dead_letter(Stage.VERIFIER.value),
    )
    subscribe_stage(
        runtime.broker, runner,
        subject=DRAFTED, stream=WORK_STREAM, durable=Stage.VERIFIER.value,
        settings=settings, runtime=runtime,
        description="Draft answers; each is checked before it can reach a customer.",
    )
    runtime.documented_payloads[f"{Stage.VERIFIER.value}:{DRAFTED}"] = TicketEnvelope
    runtime.broker.publisher(
        outcome_subject(OutcomeStatus.RESOLVED), title="outcome-resolved", schema=Outcome,
        description="Public outcome: the verified answer for the customer.",
    )
    runtime.broker.publisher(
        ESCALATION_REQUESTED, title="escalate", schema=EscalationRequest,
        description="A draft that failed a check, with every failing reason.",
    )
    return service_app(runtime, description=f"Verifies drafts ({stage.version}).")
