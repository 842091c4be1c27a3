"""Composition root of the escalation service: the queue consumer, the outbox relay and the
agents' console (web pages and REST API) on `ESCALATION_HTTP_PORT`."""

from __future__ import annotations

from functools import partial

from faststream import FastStream

from pinworks_common.ledger import Books
from pinworks_common.outbox import OutboxRelay
from pinworks_common.service import build_runtime, make_publisher, service_app, subscribe_stage
from pinworks_common.stage import StageRunner
from pinworks_contracts.messages import EscalationRequest, Outcome
from pinworks_contracts.subjects import (
    ASSIST_REQUESTED,
    ESCALATION_REQUESTED,
    WORK_STREAM,
    OutcomeStatus,
    Stage,
    outcome_subject,
)
from pinworks_escalation.console import ConsoleServer, create_console
from pinworks_escalation.metrics import poll_queue
from pinworks_escalation.settings import EscalationSettings
from pinworks_escalation.stage import EscalationStage


def create_app(settings: EscalationSettings | None = None, books: Books | None = None) -> FastStream:
    """The escalation app; `books` replaces the Postgres ledger (the component tests' in-memory
    one)."""
    settings = settings or EscalationSettings()
    runtime = build_runtime("escalation", settings)
    publish = make_publisher(runtime.broker)
    runner = StageRunner(
        EscalationStage(), books or runtime.engine, publish, max_deliveries=settings.max_deliveries
    )
    subscribe_stage(
        runtime.broker, runner,
        subject=ESCALATION_REQUESTED, stream=WORK_STREAM, durable=Stage.ESCALATION.value,
        settings=settings, runtime=runtime,
        description="Tickets automation should not answer, with every reason.",
    )
    runtime.documented_payloads[f"{Stage.ESCALATION.value}:{ESCALATION_REQUESTED}"] = (
        EscalationRequest
    )
    runtime.broker.publisher(
        ASSIST_REQUESTED, title="assist-requested", schema=EscalationRequest,
        description="Every queued ticket, for the specialists to record suggested-reply "
        "material (templates, help-centre passages) the console offers the agent.",
    )
    runtime.broker.publisher(
        outcome_subject(OutcomeStatus.ESCALATED), title="outcome-escalated", schema=Outcome,
        description="Public outcome: the ticket waits for a person.",
    )
    runtime.broker.publisher(
        outcome_subject(OutcomeStatus.RESOLVED), title="outcome-resolved-by-agent",
        schema=Outcome, description="Public outcome: a person resolved the escalated ticket.",
    )
    relay = OutboxRelay(runtime.engine, publish, interval_seconds=settings.outbox_interval_seconds)
    console = ConsoleServer(
        create_console(runtime.engine, settings), settings.http_host, settings.http_port
    )
    runtime.poller.add("escalation_queue", partial(poll_queue, runtime.engine))
    return service_app(
        runtime,
        description="The human escalation queue.",
        on_started=[relay.start, console.start],
        on_stopping=[console.stop, relay.stop],
    )
