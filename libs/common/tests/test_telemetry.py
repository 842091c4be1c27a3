"""The trace work of every message: `remote_parent` reads a traceparent exactly as the W3C
propagator does, `inject_headers` writes what it writes, and `start_span` (no exporter) joins
the message's trace with a span of its own."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pinworks_common.telemetry import inject_headers, remote_parent, start_span, trace_id_of

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
PROPAGATOR = TraceContextTextMapPropagator()

TRACEPARENTS = [
    f"00-{TRACE}-{SPAN}-01", f"00-{TRACE}-{SPAN}-00", f"00-{TRACE}-{SPAN}-ff",
    f" \t00-{TRACE}-{SPAN}-01 \t", f"00-{TRACE}-{SPAN}-01\n", f"00-{TRACE}-{SPAN}-01\n\n",
    f"00-{TRACE}-{SPAN}-01-extra", f"01-{TRACE}-{SPAN}-01-extra", f"01-{TRACE}-{SPAN}-01",
    f"ff-{TRACE}-{SPAN}-01", f"00-{TRACE.upper()}-{SPAN}-01", f"00-{'0' * 32}-{SPAN}-01",
    f"00-{TRACE}-{'0' * 16}-01", f"00-{TRACE}-{SPAN}-1", f"00-{TRACE}-{SPAN}", f"0x-{TRACE}-{SPAN}-01",
    f"00-{TRACE[:-1]}_-{SPAN}-01", f"00-{TRACE}-{SPAN}-01" + " " * 500, "", "garbage",
    f"00-{TRACE}-{SPAN}-01-" + "x" * 520,
]


def propagated(headers: dict[str, str]) -> SpanContext | None:
    parent = trace.get_current_span(PROPAGATOR.extract(headers)).get_span_context()
    return parent if parent.is_valid else None


@pytest.mark.parametrize("traceparent", TRACEPARENTS)
@pytest.mark.parametrize("tracestate", [None, "vendor=opaque,other=1", "not a state", ""])
def test_a_traceparent_is_read_as_the_propagator_reads_it(traceparent: str,
                                                          tracestate: str | None) -> None:
    headers = {"traceparent": traceparent, "Nats-Msg-Id": "m-1"}
    if tracestate is not None:
        headers["tracestate"] = tracestate
    assert remote_parent(headers) == propagated(headers)


def test_no_headers_no_parent() -> None:
    assert remote_parent(None) is None
    assert remote_parent({}) is None
    assert remote_parent({"Nats-Msg-Id": "m-1"}) is None


@pytest.mark.parametrize("context", [
    SpanContext(int(TRACE, 16), int(SPAN, 16), False, TraceFlags(1)),
    SpanContext(int(TRACE, 16), 1, True, TraceFlags(0)),
    SpanContext(1, 2, False, TraceFlags(0xFF), TraceState([("vendor", "opaque"), ("k", "v")])),
    SpanContext(0, 0, False),                        # what INVALID_SPAN carries
    SpanContext(0, 5, False, TraceFlags(1)),         # invalid, yet not *the* invalid context
])
def test_headers_are_what_the_propagator_writes(context: SpanContext) -> None:
    expected: dict[str, str] = {}
    PROPAGATOR.inject(expected, context=trace.set_span_in_context(NonRecordingSpan(context)))
    assert inject_headers(NonRecordingSpan(context)) == expected
    assert inject_headers(INVALID_SPAN) == {}


def test_a_span_joins_the_messages_trace_with_an_id_of_its_own() -> None:
    tracer = trace.get_tracer("test")
    span = start_span(tracer, "stage", {"traceparent": f"00-{TRACE}-{SPAN}-01"}, {})
    context = span.get_span_context()
    assert trace_id_of(span) == TRACE and context.span_id != int(SPAN, 16)
    assert context.trace_flags == TraceFlags(1) and not span.is_recording()
    headers = inject_headers(span)
    assert headers == {"traceparent": f"00-{TRACE}-{context.span_id:016x}-01"}
    assert remote_parent(headers) == SpanContext(int(TRACE, 16), context.span_id, True,
                                                 TraceFlags(1))
    unsampled = start_span(tracer, "stage", {"traceparent": f"00-{TRACE}-{SPAN}-00"}, {})
    assert unsampled.get_span_context().trace_flags == TraceFlags(0)
    stated = start_span(tracer, "stage", {"traceparent": f"00-{TRACE}-{SPAN}-01",
                                          "tracestate": "vendor=opaque"}, {})
    assert inject_headers(stated)["tracestate"] == "vendor=opaque"
    fresh = start_span(tracer, "stage", {"traceparent": "garbage"}, {})
    assert fresh.get_span_context().is_valid and trace_id_of(fresh) != TRACE
    assert fresh.get_span_context().trace_flags == TraceFlags(TraceFlags.SAMPLED)
