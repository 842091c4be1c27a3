"""OpenTelemetry: one trace per ticket, its context carried across services in NATS headers."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()


def configure_tracing(service_name: str, otlp_endpoint: str | None) -> TracerProvider:
    """Install a tracer provider; export over OTLP/HTTP only when an endpoint is configured."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"pinworks-{service_name}"}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    return provider


def extract_context(headers: Mapping[str, str] | None) -> Context:
    return _propagator.extract(dict(headers or {}))


def inject_headers(span: Span) -> dict[str, str]:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def trace_id_of(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")
