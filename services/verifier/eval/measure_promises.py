"""Measure the policy check's commitment reader on sentences and drafts it never trained on.

    .venv/bin/python services/verifier/eval/measure_promises.py [--json]

- `promises/heldout.tsv`: paraphrased promises and non-promises (negated, conditional, the
  bank's published facts reworded), written apart from the training set: precision and recall
  of "is a promise", of the patterns alone and of patterns + reader (the policy check), and
  how often the reader names the right kind.
- correct drafts: every draft of `labelled_drafts.jsonl.gz` that no check should fail
  (templates, kb quotes, calm tickets, PII the customer wrote, entitled promises, figures that
  look like PII): the share the policy check escalates, with and without the reader; and the
  real model's drafts (`labelled_model_drafts.jsonl.gz`; none of them is a promise, all are
  wrong in another way): how many the reader flags.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_promise_model import read_tsv  # noqa: E402
from common import EVAL_DIR  # noqa: E402

from pinworks_contracts.messages import Draft, TicketEnvelope  # noqa: E402
from pinworks_verifier.policy import PolicyCheck  # noqa: E402
from pinworks_verifier.promises import NONE, PromiseReader  # noqa: E402

HELDOUT = EVAL_DIR / "promises" / "heldout.tsv"


def envelope_of(sentence: str, template: TicketEnvelope) -> TicketEnvelope:
    assert template.draft is not None
    draft = Draft(**{**template.draft.model_dump(), "answer": sentence, "details": {}})
    return template.model_copy(update={"draft": draft})


def rates(flags: list[bool], truth: list[bool]) -> dict[str, float]:
    tp = sum(f and t for f, t in zip(flags, truth, strict=True))
    fp = sum(f and not t for f, t in zip(flags, truth, strict=True))
    fn = sum(t and not f for f, t in zip(flags, truth, strict=True))
    return {"precision": round(tp / max(tp + fp, 1), 4), "recall": round(tp / max(tp + fn, 1), 4),
            "flagged": tp + fp}


def load_drafts(name: str) -> list[dict[str, Any]]:
    with gzip.open(EVAL_DIR / name, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def measure(reader: PromiseReader) -> dict[str, Any]:
    rows = read_tsv(HELDOUT)
    drafts = load_drafts("labelled_drafts.jsonl.gz")
    template = TicketEnvelope.model_validate(drafts[0]["envelope"])
    patterns, both = PolicyCheck(), PolicyCheck(reader=reader)
    truth = [label != NONE for _, label in rows]
    by_patterns = [not patterns.run(envelope_of(s, template)).passed for s, _ in rows]
    by_both = [not both.run(envelope_of(s, template)).passed for s, _ in rows]
    readings = [reader.read(s) for s, _ in rows]
    kind_right = [r.kind == label for r, (_, label) in zip(readings, rows, strict=True)
                  if label != NONE and r.probability >= reader.threshold]
    result: dict[str, Any] = {
        "reader": reader.version, "threshold": reader.threshold,
        "heldout": {"promises": sum(truth), "non_promises": len(truth) - sum(truth),
                    "patterns_only": rates(by_patterns, truth),
                    "patterns_and_reader": rates(by_both, truth),
                    "reader_kind_right": round(sum(kind_right) / max(len(kind_right), 1), 4)},
        "correct_drafts": {},
    }
    sets = {"labelled_drafts": [d for d in drafts if not d["expected_failures"]],
            "real_model_drafts": [d for d in load_drafts("labelled_model_drafts.jsonl.gz")
                                  if "policy" not in d["expected_failures"]]}
    for name, chosen in sets.items():
        envelopes = [TicketEnvelope.model_validate(d["envelope"]) for d in chosen]
        before = sum(not patterns.run(e).passed for e in envelopes)
        after = sum(not both.run(e).passed for e in envelopes)
        result["correct_drafts"][name] = {
            "drafts": len(envelopes), "escalated_patterns_only": before,
            "escalated_with_reader": after,
            "share_with_reader": round(after / max(len(envelopes), 1), 4)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(PromiseReader.load())
    if args.json:
        print(json.dumps(result, indent=2))
        return
    held = result["heldout"]
    print(f"{result['reader']} at threshold {result['threshold']:.3f}")
    print(f"held-out: {held['promises']} paraphrased promises, {held['non_promises']} non-promises")
    for name in ("patterns_only", "patterns_and_reader"):
        r = held[name]
        print(f"  {name:20} precision {r['precision']:.3f}  recall {r['recall']:.3f}")
    print(f"  kind named right for {held['reader_kind_right']:.1%} of the promises the reader caught")
    for name, r in result["correct_drafts"].items():
        print(f"correct drafts ({name}, n={r['drafts']}): escalated by the policy check "
              f"{r['escalated_patterns_only']} with patterns only, {r['escalated_with_reader']} "
              f"with the reader ({r['share_with_reader']:.2%})")


if __name__ == "__main__":
    main()
