"""Composition root of the specialists service: one durable consumer per configured handler."""

from __future__ import annotations

import logging

from faststream import FastStream

from pinworks_common.ledger import Books
from pinworks_common.service import ServiceRuntime, build_runtime, mount_stage, service_app
from pinworks_contracts import subjects
from pinworks_contracts.messages import EscalationRequest, TicketEnvelope
from pinworks_specialists.handlers import Handler, TemplateHandler
from pinworks_specialists.metrics import BREAKERS
from pinworks_specialists.settings import LLM_INSTANCES, Price, SpecialistSettings
from pinworks_specialists.templating import TemplateBook

log = logging.getLogger("pinworks.specialists")

HANDLER_NAMES = ("template", "kb", *LLM_INSTANCES)


def build_handlers(settings: SpecialistSettings) -> list[Handler]:
    from pinworks_specialists.kb import KnowledgeBase
    from pinworks_specialists.knowledge import KbHandler
    from pinworks_specialists.llm import LlmHandler

    names = settings.handler_names()
    unknown = [name for name in names if name not in HANDLER_NAMES]
    if unknown:
        raise ValueError(f"SPECIALISTS_HANDLERS: unknown handler(s) {unknown}; "
                         f"known: {', '.join(HANDLER_NAMES)}")
    if not names:
        raise ValueError("SPECIALISTS_HANDLERS names no handler")
    book = TemplateBook.load()
    kb = KnowledgeBase.load() if set(names) - {"template"} else None
    handlers: list[Handler] = []
    for name in dict.fromkeys(names):
        price = settings.prices.get(name, Price())
        if name == "template":
            handlers.append(TemplateHandler(book, price))
        elif name == "kb":
            assert kb is not None
            handlers.append(KbHandler(kb, book, price, min_coverage=settings.kb_min_coverage,
                                      min_score=settings.kb_min_score))
        else:
            assert kb is not None
            handlers.append(LlmHandler(settings.llm_endpoint(name), kb, price))
    return handlers


def subscribe_assist(runtime: ServiceRuntime, settings: SpecialistSettings,
                     books: Books | None = None) -> None:
    """The agent-assist consumer: suggested-reply material for every escalated ticket."""
    from pinworks_specialists.assist import AssistStage
    from pinworks_specialists.kb import KnowledgeBase

    mount_stage(
        runtime, AssistStage(TemplateBook.load(), KnowledgeBase.load()), books,
        subject=subjects.ASSIST_REQUESTED, stream=subjects.WORK_STREAM,
        durable=subjects.specialist_consumer(subjects.ASSIST_HANDLER),
        payload=EscalationRequest,
        description="Escalated tickets: templates and passages for the agent's suggested reply.",
    )


def create_app(settings: SpecialistSettings | None = None, books: Books | None = None) -> FastStream:
    """The specialists app; `books` stands in for its Postgres ledger."""
    from pinworks_specialists.stage import SpecialistStage

    settings = settings or SpecialistSettings()
    handlers = build_handlers(settings)
    BREAKERS.handlers = list(handlers)
    runtime = build_runtime("specialists", settings)
    for handler in handlers:
        endpoint = getattr(handler, "endpoint", None)
        limit = endpoint.concurrency if endpoint is not None else settings.concurrency
        stage = SpecialistStage(
            handler, settings.prices.get(handler.name, Price()),
            concurrency=min(settings.concurrency, limit),
            timeout_seconds=settings.handler_timeout_seconds,
            heartbeat_seconds=max(0.5, settings.ack_wait_seconds / 3),
        )
        mount_stage(
            runtime, stage, books,
            subject=subjects.routed_subject(handler.name), stream=subjects.WORK_STREAM,
            durable=subjects.specialist_consumer(handler.name),
            payload=TicketEnvelope, escalate_dead_letters=True,
            description=f"Tickets routed to the {handler.name} handler.",
        )
    subscribe_assist(runtime, settings, books)
    runtime.broker.publisher(
        subjects.DRAFTED, title="drafted", schema=TicketEnvelope,
        description="A draft answer, for the verifier.",
    )
    names = ", ".join(f"{h.name} {h.version}" for h in handlers)

    async def report_availability() -> None:
        for handler in handlers:
            if not getattr(handler, "available", True):
                log.warning("%s is unavailable: %s; its tickets fall back", handler.name,
                            getattr(handler, "unavailable_reason", "no backend"))

    async def close_handlers() -> None:
        for handler in handlers:
            await handler.close()

    return service_app(runtime, description=f"Specialist handlers: {names}.",
                       on_started=[report_availability], on_stopping=[close_handlers])
