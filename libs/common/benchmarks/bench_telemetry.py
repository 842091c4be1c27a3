"""Benchmark the trace work every stage does for each message it takes, with no exporter
configured (the shipped default): `start_span` (the message's `traceparent` read and a span of
its own in that trace), the span's trace id for the audit rows, and the headers that carry it to
the next stage (`inject_headers`), as `pinworks_common.stage` calls them once per message.

Three kinds of message: one whose headers carry a traceparent (every message between stages),
one with a traceparent and a tracestate, one with no trace (a support platform's submission).
Prints CPU microseconds per message of each, best of `--repeats` runs.

Usage: .venv/bin/python libs/common/benchmarks/bench_telemetry.py [--messages 20000]
"""

from __future__ import annotations

import argparse
import time

from opentelemetry import trace

from pinworks_common.telemetry import inject_headers, start_span, trace_id_of

HEADERS = {
    "traceparent": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    "Nats-Msg-Id": "classified:support:T-1:0"},
    "traceparent + tracestate": {
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "vendor=opaque,other=1", "Nats-Msg-Id": "classified:support:T-1:0"},
    "no trace": {"Nats-Msg-Id": "submitted:support:T-1"},
}


def per_message(headers: dict[str, str], messages: int) -> float:
    tracer = trace.get_tracer("bench")
    started = time.process_time()
    for seq in range(messages):
        span = start_span(tracer, "stage process", headers, {
            "messaging.system": "nats", "messaging.destination.name": "pinworks.work.x",
            "pinworks.stream_seq": seq, "pinworks.deliveries": 1})
        trace_id_of(span)
        inject_headers(span)
        span.end()
    return (time.process_time() - started) * 1e6 / messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name, headers in HEADERS.items():
        best = min(per_message(headers, args.messages) for _ in range(args.repeats))
        print(f"{name:<26} {best:6.2f} CPU-us per message")


if __name__ == "__main__":
    main()
