"""Composition root of the escalation service: the queue consumer, the outbox relay and the
agents' console (web pages and REST API) on `ESCALATION_HTTP_PORT`."""

from __future__ import annotations

from functools import partial

from faststream import FastStream

from pinworks_common.db.engine import create_engine
from pinworks_common.ledger import Books
from pinworks_common.outbox import OutboxRelay
from pinworks_common.service import build_runtime, make_publisher, mount_stage, service_app
from pinworks_contracts import subjects
from pinworks_contracts.messages import EscalationRequest, Outcome
from pinworks_escalation.console import ConsoleServer, create_console
from pinworks_escalation.erasure import RetentionTask
from pinworks_escalation.metrics import poll_queue
from pinworks_escalation.quality_sample import QualitySampleStage
from pinworks_escalation.settings import EscalationSettings
from pinworks_escalation.stage import EscalationStage


def create_app(settings: EscalationSettings | None = None, books: Books | None = None) -> FastStream:
    """The escalation app; `books` stands in for its Postgres ledger."""
    settings = settings or EscalationSettings()
    runtime = build_runtime("escalation", settings)
    mount_stage(
        runtime, EscalationStage(), books,
        subject=subjects.ESCALATION_REQUESTED, stream=subjects.WORK_STREAM,
        payload=EscalationRequest,
        description="Tickets automation should not answer, with every reason.",
    )
    mount_stage(
        runtime, QualitySampleStage(settings.quality_sample_rate), books,
        subject=subjects.outcome_status_subjects(subjects.OutcomeStatus.RESOLVED),
        stream=subjects.OUTCOMES_STREAM, payload=Outcome,
        description="Resolved tickets: a random share of the automatic answers goes to the "
        "agents' quality review (ESCALATION_QUALITY_SAMPLE_RATE).",
    )
    runtime.broker.publisher(
        subjects.ASSIST_REQUESTED, title="assist-requested", schema=EscalationRequest,
        description="Every queued ticket, for the specialists to record suggested-reply "
        "material (templates, help-centre passages) the console offers the agent.",
    )
    runtime.broker.publisher(
        subjects.outcome_status_subjects(subjects.OutcomeStatus.ESCALATED),
        title="outcome-escalated", schema=Outcome,
        description="Public outcome: the ticket waits for a person.",
    )
    runtime.broker.publisher(
        subjects.outcome_status_subjects(subjects.OutcomeStatus.RESOLVED),
        title="outcome-resolved-by-agent",
        schema=Outcome, description="Public outcome: a person resolved the escalated ticket.",
    )
    relay = OutboxRelay(runtime.engine, make_publisher(runtime.broker),
                        interval_seconds=settings.outbox_interval_seconds)
    console_engine = (create_engine(settings.console_database_url, pool_size=3)
                      if settings.console_database_url else runtime.engine)
    console = ConsoleServer(
        create_console(console_engine, settings), settings.http_host, settings.http_port,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    retention = RetentionTask(
        runtime.engine, retention_days=settings.retention_days,
        interval_seconds=settings.retention_interval_seconds,
        jetstream=lambda: runtime.broker.config.connection_state.stream)

    async def close_console_engine() -> None:
        if console_engine is not runtime.engine:
            await console_engine.dispose()

    runtime.poller.add("escalation_queue", partial(poll_queue, runtime.engine))
    return service_app(
        runtime,
        description="The human escalation queue.",
        on_started=[relay.start, console.start, retention.start],
        on_stopping=[retention.stop, console.stop, relay.stop, close_console_engine],
    )
