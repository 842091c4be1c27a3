"""Composition root of the classifier service."""

from __future__ import annotations

from faststream import FastStream

from pinworks_classifier.metrics import DRIFT, DriftMonitor, shipped_intent_reference
from pinworks_classifier.settings import ClassifierSettings
from pinworks_classifier.stage import ClassifierStage
from pinworks_common.customer_state import CustomerStateReader
from pinworks_common.ledger import Books
from pinworks_common.service import (
    build_runtime,
    make_publisher,
    service_app,
    subscribe_stage,
)
from pinworks_common.stage import StageRunner
from pinworks_contracts.messages import Outcome, TicketEnvelope, TicketSubmission
from pinworks_contracts.subjects import (
    CLASSIFIED,
    SUBMITTED,
    TICKETS_STREAM,
    OutcomeStatus,
    Stage,
    outcome_subject,
)


def create_app(settings: ClassifierSettings | None = None, books: Books | None = None) -> FastStream:
    """The classifier app; `books` replaces the Postgres ledger (the component tests' in-memory
    one)."""
    from pinworks_classifier.model import IntentModel

    settings = settings or ClassifierSettings()
    runtime = build_runtime("classifier", settings)
    model = IntentModel.load(settings.artifact_dir, encoder_threads=settings.encoder_threads)
    DRIFT.monitor = DriftMonitor.from_manifest(model.manifest, shipped_intent_reference())
    stage = ClassifierStage(model, settings.cost_per_ticket_usd,
                            CustomerStateReader(settings.negative_sentiment_threshold))
    runner = StageRunner(
        stage, books or runtime.engine, make_publisher(runtime.broker),
        max_deliveries=settings.max_deliveries,
    )
    subscribe_stage(
        runtime.broker, runner,
        subject=SUBMITTED, stream=TICKETS_STREAM, durable=Stage.CLASSIFIER.value,
        settings=settings, runtime=runtime,
        description="Support platforms submit tickets here. Malformed payloads become "
        "`rejected` outcomes; accepted tickets are classified and handed to the router.",
    )
    runtime.documented_payloads[f"{Stage.CLASSIFIER.value}:{SUBMITTED}"] = TicketSubmission
    runtime.broker.publisher(
        CLASSIFIED, title="classified", schema=TicketEnvelope,
        description="Accepted ticket with its classification, for the router.",
    )
    runtime.broker.publisher(
        outcome_subject(OutcomeStatus.REJECTED), title="outcome-rejected", schema=Outcome,
        description="A submission that could not be accepted, with the reasons.",
    )
    return service_app(
        runtime,
        description="Classifies each submitted ticket: intent, calibrated confidence, out of scope.",
    )
