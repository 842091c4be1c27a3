"""OpenTelemetry: one trace per ticket, its context carried across services in NATS headers."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

_propagator = TraceContextTextMapPropagator()
_ids = RandomIdGenerator()
_exporting = False
"""Whether `configure_tracing` installed an exporter: only then are spans worth recording."""


def configure_tracing(service_name: str, otlp_endpoint: str | None) -> TracerProvider:
    """Install a tracer provider; export over OTLP/HTTP only when an endpoint is configured."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"pinworks-{service_name}"}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    global _exporting  # noqa: PLW0603 - the process's one tracing configuration
    _exporting = bool(otlp_endpoint)
    return provider


def start_span(tracer: trace.Tracer, name: str, headers: Mapping[str, str] | None,
               attributes: Attributes) -> Span:
    """A span joining the trace the message's `traceparent` names (a new trace without one).

    With no exporter configured nothing would ever read a recorded span, so it is a
    non-recording span with its own id in the same trace: the trace id still reaches the audit
    rows and the next stage's headers, without the SDK's per-span work (timestamps, locks,
    attributes, the processor chain), which cost a stage more than its routing decision."""
    context = extract_context(headers)
    if _exporting:
        return tracer.start_span(name, context=context, attributes=attributes)
    parent = trace.get_current_span(context).get_span_context()
    if parent.is_valid:
        return NonRecordingSpan(SpanContext(parent.trace_id, _ids.generate_span_id(), False,
                                            parent.trace_flags, parent.trace_state))
    return NonRecordingSpan(SpanContext(_ids.generate_trace_id(), _ids.generate_span_id(),
                                        False, TraceFlags(TraceFlags.SAMPLED)))


def extract_context(headers: Mapping[str, str] | None) -> Context:
    return _propagator.extract(headers or {})


def inject_headers(span: Span) -> dict[str, str]:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def trace_id_of(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")
