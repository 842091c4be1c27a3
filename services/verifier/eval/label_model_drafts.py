"""Join the local model's drafts with their hand labels into a labelled set for the evaluation.

    .venv/bin/python services/verifier/eval/label_model_drafts.py          # write the set
    .venv/bin/python services/verifier/eval/label_model_drafts.py --show   # unlabelled drafts

`model_drafts.jsonl` holds what `collect_model_drafts.py` got from the real model;
`model_draft_labels.json` holds, for every reply that became a draft, a person's reading of it:
one or more labels, and a note saying why. Drafts the handler's citation gate accepted are what
the verifier sees in production (`gate: accepted`); the replies the gate refused (no citation,
cut off at max_tokens) are kept as the drafts they would have been (`gate: refused`), to measure
the verifier alone on the model's text.

Labels and the checks that must fail on them:

grounded            every claim is in the cited passages and it answers the ticket: none
ungrounded          a claim (not a figure) that the cited passages do not make: groundedness
invented_figures    a number, amount or period the passages do not give: groundedness
wrong_promise       a refund, waiver, compensation or outcome the bank does not promise: policy
ignored_question    it does not answer what the customer asked (or one of two questions):
                    completeness
unfinished          it stops mid-sentence (cut off at max_tokens): completeness

The result, `labelled_model_drafts.jsonl.gz`, has the shape `python -m pinworks_verifier.evaluate
--set` reads (`kind` is the first label).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EVAL_DIR  # noqa: E402

DRAFTS = EVAL_DIR / "model_drafts.jsonl"
LABELS = EVAL_DIR / "model_draft_labels.json"
OUT = EVAL_DIR / "labelled_model_drafts.jsonl.gz"
CHECK_OF_LABEL = {
    "grounded": None,
    "ungrounded": "groundedness",
    "invented_figures": "groundedness",
    "wrong_promise": "policy",
    "ignored_question": "completeness",
    "unfinished": "completeness",
}


def load_drafts(path: Path = DRAFTS) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def expected_failures(labels: list[str]) -> list[str]:
    unknown = [label for label in labels if label not in CHECK_OF_LABEL]
    if unknown or not labels:
        raise ValueError(f"labels must be some of {sorted(CHECK_OF_LABEL)}, got {labels}")
    if "grounded" in labels and len(labels) > 1:
        raise ValueError(f"'grounded' excludes every other label, got {labels}")
    return sorted({c for label in labels if (c := CHECK_OF_LABEL[label]) is not None})


def build(drafts: list[dict[str, Any]], labels: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    written = [d for d in drafts if (d.get("envelope") or {}).get("draft")]
    missing = [d["id"] for d in written if d["id"] not in labels]
    if missing:
        raise SystemExit(f"{len(missing)} drafts have no label: {missing[:10]}")
    records = []
    for draft in written:
        label = labels[draft["id"]]
        records.append({"id": f"model-{draft['id']}", "kind": label["labels"][0],
                        "labels": label["labels"], "note": label.get("note", ""),
                        "gate": "accepted" if draft["accepted"] else "refused",
                        "expected_failures": expected_failures(label["labels"]),
                        "envelope": draft["envelope"]})
    return records


def show(drafts: list[dict[str, Any]], labels: dict[str, dict[str, Any]]) -> None:
    for draft in drafts:
        if not (draft.get("envelope") or {}).get("draft") or draft["id"] in labels:
            continue
        env = draft["envelope"]
        d = env["draft"]
        gate = "accepted" if draft["accepted"] else f"refused: {draft['declined']}"
        print(f"=== {draft['id']} ({', '.join(draft['intents'])}) {gate}")
        print(textwrap.indent(env["ticket"]["body"], "  T> "))
        for p in d["details"]["passages"]:
            print(textwrap.indent(f"[{p['passage_id']}] {p['text']}", "  P> "))
        print(textwrap.indent(d["details"]["answer_with_citations"], "  A> "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--show", action="store_true", help="print the drafts not yet labelled")
    args = parser.parse_args()
    drafts = load_drafts()
    labels = json.loads(LABELS.read_text(encoding="utf-8")) if LABELS.exists() else {}
    if args.show:
        show(drafts, labels)
        return 0
    records = build(drafts, labels)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
        for record in records:
            handle.write((json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode())
    OUT.write_bytes(buffer.getvalue())
    print(f"wrote {len(records)} labelled model drafts to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
