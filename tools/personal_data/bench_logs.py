"""What redacting a log record costs: the same records through the service's JSON handler with
and without `RedactingFilter` (a benchmark to run by hand, not a timed test).

    .venv/bin/python tools/personal_data/bench_logs.py [--records 5000]
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from collections.abc import Sequence

from pinworks_common.logs import RedactingFilter, configure_logging, log_fields

RECORDS = [
    ("stage %s: batch of %d applied in %.3fs", ("specialist-llm_small", 8, 0.034), {}),
    ("Received", (), {"subject": "pinworks.work.routed.kb", "message_id": "T-1042:routed:kb"}),
    ("ticket %s handed to a person: %s", ("T-1042", "verifier refused the draft"), {}),
    ("reply for %s <%s> on card %s", ("Jane Okafor", "jane.okafor@example.org",
                                      "4111 1111 1111 1111"), {}),
]


Shape = tuple[str, tuple[object, ...], dict[str, str]]


def per_record(records: int, redacting: bool, shapes: Sequence[Shape] = RECORDS) -> float:
    out = io.StringIO()
    configure_logging("bench", stream=out)
    handler = logging.getLogger().handlers[0]
    if not redacting:
        for flt in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(flt)
    log = logging.getLogger("pinworks.bench")
    started = time.process_time()  # this process's CPU: other work on the machine counts less
    for n in range(records):
        message, args, extra = shapes[n % len(shapes)]
        log.info(message, *args, extra={**extra, **log_fields(ticket_id=f"T-{n}")})
    return (time.process_time() - started) / records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=5000)
    records = parser.parse_args().records
    per_record(200, True)  # warm: gazetteers and patterns load once
    plain, redacted = per_record(records, False), per_record(records, True)
    print(f"{records} records, a mix of {len(RECORDS)} shapes (one with a card, an e-mail, a name)")
    print(f"  without redaction {plain * 1e6:8.1f} µs CPU per record")
    print(f"  with redaction    {redacted * 1e6:8.1f} µs CPU per record "
          f"(+{(redacted - plain) * 1e6:.1f} µs)")
    for shape in RECORDS:
        extra = per_record(records // 4, True, [shape]) - per_record(records // 4, False, [shape])
        print(f"  +{extra * 1e6:6.1f} µs  {shape[0] % shape[1] if shape[1] else shape[0]}")


if __name__ == "__main__":
    main()
