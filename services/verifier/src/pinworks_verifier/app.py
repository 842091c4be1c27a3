"""Composition root of the verifier service."""

from __future__ import annotations

from faststream import FastStream

from pinworks_common.ledger import Books
from pinworks_common.service import build_runtime, mount_stage, service_app
from pinworks_contracts import subjects
from pinworks_contracts.messages import EscalationRequest, Outcome, TicketEnvelope
from pinworks_verifier.factory import build_checks
from pinworks_verifier.settings import VerifierSettings
from pinworks_verifier.stage import VerifierStage


def create_app(settings: VerifierSettings | None = None, books: Books | None = None) -> FastStream:
    """The verifier app; `books` stands in for its Postgres ledger."""
    settings = settings or VerifierSettings()
    runtime = build_runtime("verifier", settings)
    stage = VerifierStage(build_checks(settings))
    mount_stage(
        runtime, stage, books,
        subject=subjects.DRAFTED, stream=subjects.WORK_STREAM,
        payload=TicketEnvelope, escalate_dead_letters=True,
        description="Draft answers; each is checked before it can reach a customer.",
    )
    runtime.broker.publisher(
        subjects.outcome_status_subjects(subjects.OutcomeStatus.RESOLVED),
        title="outcome-resolved", schema=Outcome,
        description="Public outcome: the verified answer for the customer.",
    )
    runtime.broker.publisher(
        subjects.ESCALATION_REQUESTED, title="escalate", schema=EscalationRequest,
        description="A draft that failed a check, with every failing reason.",
    )
    return service_app(runtime, description=f"Verifies drafts ({stage.version}).")
