"""Composition root of the specialists service: one durable consumer per configured handler."""

from __future__ import annotations

from faststream import FastStream
from pinworks_common.contracts import TicketEnvelope
from pinworks_common.service import build_runtime, make_publisher, service_app, subscribe_stage
from pinworks_common.stage import StageRunner, escalate_on_dead_letter
from pinworks_common.subjects import DRAFTED, WORK_STREAM, Stage, routed_subject, specialist_consumer

from pinworks_specialists.handlers import Handler, TemplateHandler
from pinworks_specialists.settings import Price, SpecialistSettings
from pinworks_specialists.templating import TemplateBook


def build_handlers(settings: SpecialistSettings) -> list[Handler]:
    handlers: list[Handler] = []
    for name in settings.handler_names():
        price = settings.prices.get(name, Price())
        if name == "template":
            handlers.append(TemplateHandler(TemplateBook.load(), price))
        else:
            raise ValueError(f"SPECIALISTS_HANDLERS: unknown handler {name!r}")
    if not handlers:
        raise ValueError("SPECIALISTS_HANDLERS names no handler")
    return handlers


def create_app(settings: SpecialistSettings | None = None) -> FastStream:
    from pinworks_specialists.stage import SpecialistStage

    settings = settings or SpecialistSettings()
    handlers = build_handlers(settings)
    runtime = build_runtime("specialists", settings)
    publish = make_publisher(runtime.broker)
    for handler in handlers:
        runner = StageRunner(
            SpecialistStage(handler), runtime.engine, publish,
            max_deliveries=settings.max_deliveries,
            on_dead_letter=escalate_on_dead_letter(Stage.SPECIALIST.value),
        )
        subject = routed_subject(handler.name)
        durable = specialist_consumer(handler.name)
        subscribe_stage(
            runtime.broker, runner, subject=subject, stream=WORK_STREAM, durable=durable,
            settings=settings, description=f"Tickets routed to the {handler.name} handler.",
        )
        runtime.documented_payloads[f"{durable}:{subject}"] = TicketEnvelope
    runtime.broker.publisher(
        DRAFTED, title="drafted", schema=TicketEnvelope,
        description="A draft answer, for the verifier.",
    )
    names = ", ".join(f"{h.name} {h.version}" for h in handlers)
    return service_app(runtime, description=f"Specialist handlers: {names}.")
