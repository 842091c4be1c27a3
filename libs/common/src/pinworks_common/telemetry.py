"""OpenTelemetry: one trace per ticket, its context carried across services in NATS headers."""

from __future__ import annotations

import re
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    Span,
    SpanContext,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

_propagator = TraceContextTextMapPropagator()
_ids = RandomIdGenerator()
TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
_TRACEPARENT_MAX_CHARS = 512
_TRACEPARENT_RE = re.compile(  # the W3C propagator's own pattern, searched as it searches it
    "^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})" + "(?:(-.*)|[ \t]*)$")
_NO_TRACE_ID, _NO_SPAN_ID = "0" * 32, "0" * 16
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
    if _exporting:
        return tracer.start_span(name, context=extract_context(headers), attributes=attributes)
    parent = _parent_ids(headers)
    if isinstance(parent, SpanContext):
        return NonRecordingSpan(SpanContext(parent.trace_id, _ids.generate_span_id(), False,
                                            parent.trace_flags, parent.trace_state))
    if parent is not None:
        return NonRecordingSpan(SpanContext(parent[0], _ids.generate_span_id(), False, parent[1]))
    return NonRecordingSpan(SpanContext(_ids.generate_trace_id(), _ids.generate_span_id(),
                                        False, TraceFlags(TraceFlags.SAMPLED)))


def remote_parent(headers: Mapping[str, str] | None) -> SpanContext | None:
    """The span the message's `traceparent` names, as the W3C propagator reads it (None when it
    names none or an invalid one), without the OpenTelemetry Context the propagator builds
    around it: a message between stages carries one plain traceparent, read here with the
    propagator's own pattern and checks. Anything else (a tracestate, a value that is not one
    string, one too long) is left to the propagator itself."""
    parent = _parent_ids(headers)
    if parent is None or isinstance(parent, SpanContext):
        return parent
    return SpanContext(parent[0], parent[2], True, parent[1])


def _parent_ids(headers: Mapping[str, str] | None
                ) -> tuple[int, TraceFlags, int] | SpanContext | None:
    """`remote_parent`'s trace id, flags and span id, or the propagator's whole reading."""
    header = headers.get(TRACEPARENT) if headers else None
    if header is None:
        return None
    if (not isinstance(header, str) or len(header) > _TRACEPARENT_MAX_CHARS
            or TRACESTATE in headers):  # type: ignore[operator] # headers is set here
        return _propagated_parent(headers)
    match = _TRACEPARENT_RE.search(header)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if (trace_id == _NO_TRACE_ID or span_id == _NO_SPAN_ID or (version == "00" and rest)
            or version == "ff"):
        return None
    return int(trace_id, 16), TraceFlags(int(flags, 16)), int(span_id, 16)


def _propagated_parent(headers: Mapping[str, str] | None) -> SpanContext | None:
    parent = trace.get_current_span(extract_context(headers)).get_span_context()
    return parent if parent.is_valid else None


def extract_context(headers: Mapping[str, str] | None) -> Context:
    return _propagator.extract(headers or {})


def inject_headers(span: Span) -> dict[str, str]:
    """The headers that carry `span` to the next stage: what the W3C propagator writes for it,
    formatted here directly from its span context instead of through a Context."""
    context = span.get_span_context()
    if not (context.trace_id or context.span_id) and context == INVALID_SPAN_CONTEXT:
        return {}
    carrier = {TRACEPARENT: f"00-{context.trace_id:032x}-{context.span_id:016x}-"
                            f"{context.trace_flags:02x}"}
    if context.trace_state:
        carrier[TRACESTATE] = context.trace_state.to_header()
    return carrier


def trace_id_of(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")
