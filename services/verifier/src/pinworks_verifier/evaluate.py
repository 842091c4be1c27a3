"""Measure the verifier on a labelled set of drafts.

    python -m pinworks_verifier.evaluate [--set PATH] [--json]

Each record of the set (`services/verifier/eval/labelled_drafts.jsonl.gz`, built by
`services/verifier/eval/build_set.py`) holds a drafted `TicketEnvelope`, its `kind` and the
checks that must fail on it. The report gives every check's precision and recall, the share of
each kind escalated, the two headline figures (wrong-intent drafts caught, good drafts
escalated) and the per-draft latency of all checks together.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinworks_contracts.messages import TicketEnvelope
from pinworks_verifier.checks import verify
from pinworks_verifier.factory import build_checks
from pinworks_verifier.result import Check
from pinworks_verifier.settings import VerifierSettings

DEFAULT_SET = Path(__file__).resolve().parents[2] / "eval" / "labelled_drafts.jsonl.gz"
WRONG_INTENT_KINDS = ("wrong_random", "wrong_confusable", "wrong_specialist_honest",
                      "wrong_specialist_claiming")


@dataclass
class Report:
    records: int = 0
    per_check: dict[str, dict[str, float]] = field(default_factory=dict)
    per_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    wrong_intent_caught: float = 0.0
    good_escalated: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    misses: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "per_check": self.per_check, "per_kind": self.per_kind,
                "wrong_intent_caught": self.wrong_intent_caught,
                "good_escalated": self.good_escalated, "latency_ms": self.latency_ms}


def load_set(path: Path) -> list[dict[str, Any]]:
    records = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for n, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                    record["envelope"] = TicketEnvelope.model_validate(record["envelope"])
                except (ValueError, KeyError) as exc:
                    raise ValueError(f"{path}:{n}: not a labelled draft: {exc}") from exc
                records.append(record)
    return records


def ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else float("nan")


def evaluate(checks: Sequence[Check], records: Sequence[dict[str, Any]]) -> Report:
    names = [check.name for check in checks]
    tp: dict[str, int] = defaultdict(int)
    fp: dict[str, int] = defaultdict(int)
    fn: dict[str, int] = defaultdict(int)
    kinds: dict[str, list[bool]] = defaultdict(list)
    should: dict[str, list[bool]] = defaultdict(list)
    latencies: list[float] = []
    report = Report(records=len(records))
    for record in records:
        started = time.perf_counter()
        results = verify(checks, record["envelope"])
        latencies.append((time.perf_counter() - started) * 1000)
        expected = set(record["expected_failures"])
        failed = {r.check for r in results if not r.passed}
        for name in names:
            if name in failed and name in expected:
                tp[name] += 1
            elif name in failed:
                fp[name] += 1
            elif name in expected:
                fn[name] += 1
        kinds[record["kind"]].append(bool(failed))
        should[record["kind"]].append(bool(expected))
        if failed ^ expected and len(report.misses) < 2000:
            report.misses.append({"id": record["id"], "kind": record["kind"],
                                  "expected": sorted(expected), "failed": sorted(failed),
                                  "reasons": [x for r in results for x in r.reasons]})
    for name in names:
        report.per_check[name] = {
            "precision": ratio(tp[name], tp[name] + fp[name]),
            "recall": ratio(tp[name], tp[name] + fn[name]),
            "positives": tp[name] + fn[name], "true_pos": tp[name], "false_pos": fp[name],
        }
    for kind, flags in sorted(kinds.items()):
        report.per_kind[kind] = {"n": len(flags), "escalated": ratio(sum(flags), len(flags)),
                                 "labelled_escalate": ratio(sum(should[kind]), len(flags))}
    wrong = [f for k in WRONG_INTENT_KINDS for f in kinds.get(k, [])]
    good: list[bool] = []
    position: dict[str, int] = defaultdict(int)
    for record in records:
        flag = kinds[record["kind"]][position[record["kind"]]]
        position[record["kind"]] += 1
        if not record["expected_failures"]:
            good.append(flag)
    report.wrong_intent_caught = ratio(sum(wrong), len(wrong))
    report.good_escalated = ratio(sum(good), len(good))
    ordered = sorted(latencies)
    report.latency_ms = {"mean": round(statistics.fmean(ordered), 3),
                         "p50": round(ordered[len(ordered) // 2], 3),
                         "p99": round(ordered[int(len(ordered) * 0.99)], 3)}
    return report


def render(report: Report) -> str:
    lines = [f"verifier evaluation on {report.records} labelled drafts", "",
             f"{'check':<16}{'precision':>10}{'recall':>8}{'positives':>11}{'false pos':>11}"]
    for name, m in report.per_check.items():
        lines.append(f"{name:<16}{m['precision']:>10.3f}{m['recall']:>8.3f}"
                     f"{int(m['positives']):>11}{int(m['false_pos']):>11}")
    lines += ["", f"{'kind':<28}{'n':>6}{'escalated':>11}{'labelled':>10}"]
    for kind, m in report.per_kind.items():
        lines.append(f"{kind:<28}{int(m['n']):>6}{m['escalated']:>11.3f}"
                     f"{m['labelled_escalate']:>10.3f}")
    lines += ["",
              f"wrong-intent drafts caught: {report.wrong_intent_caught:.1%}",
              f"good drafts escalated:      {report.good_escalated:.1%}",
              f"latency per draft (all checks): mean {report.latency_ms['mean']} ms, "
              f"p50 {report.latency_ms['p50']} ms, p99 {report.latency_ms['p99']} ms"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinworks_verifier.evaluate",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="labelled JSONL set")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--misses", type=Path, help="write disagreements with labels here")
    args = parser.parse_args(argv)
    if not args.set.is_file():
        print(f"no labelled set at {args.set}", file=sys.stderr)
        return 2
    report = evaluate(build_checks(VerifierSettings()), load_set(args.set))
    print(json.dumps(report.as_dict(), indent=1) if args.json else render(report))
    if args.misses:
        args.misses.write_text("\n".join(json.dumps(m) for m in report.misses) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
