"""Composition root of the classifier service."""

from __future__ import annotations

from faststream import FastStream

from pinworks_classifier.metrics import DRIFT, DriftMonitor, shipped_intent_reference
from pinworks_classifier.settings import ClassifierSettings
from pinworks_classifier.stage import ClassifierStage
from pinworks_common.customer_state import CustomerStateReader
from pinworks_common.ledger import Books
from pinworks_common.service import build_runtime, mount_stage, service_app
from pinworks_contracts import subjects
from pinworks_contracts.messages import Outcome, TicketEnvelope, TicketSubmission


def create_app(settings: ClassifierSettings | None = None, books: Books | None = None) -> FastStream:
    """The classifier app; `books` stands in for its Postgres ledger."""
    from pinworks_classifier.model import IntentModel

    settings = settings or ClassifierSettings()
    runtime = build_runtime("classifier", settings)
    model = IntentModel.load(settings.artifact_dir, encoder_threads=settings.encoder_threads)
    DRIFT.monitor = DriftMonitor.from_manifest(model.manifest, shipped_intent_reference())
    stage = ClassifierStage(model, settings.cost_per_ticket_usd,
                            CustomerStateReader(settings.negative_sentiment_threshold),
                            settings.platform_units)
    mount_stage(
        runtime, stage, books,
        subject=subjects.SUBMITTED_WILDCARD, stream=subjects.TICKETS_STREAM,
        payload=TicketSubmission,
        description="Support platform `<platform>` submits tickets on "
        "`tickets.submitted.<platform>` (only its NATS identity may publish there). Malformed "
        "payloads, and tickets for a business unit the platform is not bound to "
        "(`CLASSIFIER_PLATFORM_UNITS`), become `rejected` outcomes; accepted tickets are "
        "classified and handed to the router.",
    )
    runtime.broker.publisher(
        subjects.CLASSIFIED, title="classified", schema=TicketEnvelope,
        description="Accepted ticket with its classification, for the router.",
    )
    runtime.broker.publisher(
        subjects.outcome_status_subjects(subjects.OutcomeStatus.REJECTED),
        title="outcome-rejected", schema=Outcome,
        description="A submission that could not be accepted, with the reasons.",
    )
    return service_app(
        runtime,
        description="Classifies each submitted ticket: intent, calibrated confidence, out of scope.",
    )
