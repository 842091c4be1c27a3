"""Precision and recall of pinworks_common.personal_data on the labelled set (eval/README.md),
per kind and overall, and the spans it leaked or over-redacted (a report, not a timed test).

    .venv/bin/python tools/personal_data/bench_redaction.py [--show 20] [--split dev|test]

Tune on `--split dev` only; `--split test` (templates and hand-written tickets never looked at
while tuning) is the figure to report.
"""

from __future__ import annotations

import argparse
import time

from eval_set import Example, Tally, load, split_of

from pinworks_common.personal_data import Kind, find


def table(title: str, tally: Tally) -> None:
    print(f"\n{title}")
    print(f"  {'kind':8} {'marked':>6} {'recall':>7} {'typed':>7} {'found':>6} {'precision':>9}")
    for kind in [*Kind, None]:
        label = kind.value if kind else "overall"
        gold = tally.gold[kind] if kind else sum(tally.gold.values())
        found = tally.found[kind] if kind else sum(tally.found.values())
        print(f"  {label:8} {gold:6d} {tally.recall(kind):7.3f} {tally.typed_recall(kind):7.3f} "
              f"{found:6d} {tally.precision(kind):9.3f}")


def mistakes(examples: list[Example], show: int) -> None:
    leaked, over = [], []
    for example in examples:
        findings = find(example.text)
        single = Tally.empty()
        for span in example.spans:
            single.add(Example(example.id, example.source, example.text, (span,)), findings)
            if not single.redacted[span.kind]:
                leaked.append(f"{span.kind.value:7} {example.text[span.start:span.end]!r} "
                              f"({example.id})")
            single = Tally.empty()
        for f in findings:
            if not any(s.start < f.end and f.start < s.end for s in example.spans):
                over.append(f"{f.kind.value:7} {f.text!r} ({example.id})")
    for title, rows in (("leaked (not redacted whole)", leaked), ("over-redacted", over)):
        print(f"\n{title}: {len(rows)}")
        for row in rows[:show]:
            print(f"  {row}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--show", type=int, default=20, help="mistakes listed per list")
    parser.add_argument("--split", choices=("dev", "test"), help="only this half of the set")
    args = parser.parse_args()
    show = args.show
    examples = [e for e in load() if args.split is None or split_of(e) == args.split]
    started = time.perf_counter()
    by_source: dict[str, Tally] = {"all": Tally.empty(), "generated": Tally.empty(),
                                   "hand-written": Tally.empty()}
    for example in examples:
        findings = find(example.text)
        by_source["all"].add(example, findings)
        part = "generated" if example.source.startswith("template") else "hand-written"
        by_source[part].add(example, findings)
    seconds = time.perf_counter() - started
    print(f"{len(examples)} tickets, {sum(len(e.spans) for e in examples)} marked spans, "
          f"{seconds / len(examples) * 1000:.2f} ms per ticket")
    for name, tally in by_source.items():
        table(name, tally)
    mistakes(examples, show)


if __name__ == "__main__":
    main()
