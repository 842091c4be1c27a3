"""Benchmark the verifier's checks: CPU per draft of each configured check and of all of them,
on the labelled drafts (`eval/labelled_drafts.jsonl.gz`: template and kb drafts, right and
wrong ones, with the personal data, promises and unsupported sentences the checks look for).

The first `--warm` drafts are checked once untimed (lazy state, per-word caches), then every
other draft once, timed: each draft's text is new to the detectors' caches, as in the service.

Usage: .venv/bin/python services/verifier/benchmarks/bench_verify.py [--warm 300] [--second-opinion]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from pinworks_contracts.messages import TicketEnvelope
from pinworks_verifier.factory import build_checks
from pinworks_verifier.settings import VerifierSettings

LABELLED = Path(__file__).resolve().parents[1] / "eval" / "labelled_drafts.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm", type=int, default=300)
    parser.add_argument("--second-opinion", action="store_true")
    args = parser.parse_args()
    with gzip.open(LABELLED, "rt", encoding="utf-8") as lines:
        envelopes = [TicketEnvelope.model_validate(json.loads(line)["envelope"]) for line in lines]
    checks = build_checks(VerifierSettings(second_opinion=args.second_opinion))
    for envelope in envelopes[:args.warm]:
        for check in checks:
            check.run(envelope)
    timed = envelopes[args.warm:]
    cpu = dict.fromkeys((check.name for check in checks), 0.0)
    for envelope in timed:
        for check in checks:
            started = time.process_time()
            check.run(envelope)
            cpu[check.name] += time.process_time() - started
    per_draft = {name: seconds * 1000 / len(timed) for name, seconds in cpu.items()}
    print(f"verify  {len(timed)} drafts: {sum(per_draft.values()):.3f} CPU-ms per draft, all checks")
    print("        " + ", ".join(f"{name} {ms:.3f}" for name, ms in per_draft.items()))


if __name__ == "__main__":
    main()
