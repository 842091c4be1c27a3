"""Writes eval/detector_reference.jsonl.gz: every text of detector_corpus.py with the findings
the detector gives it now, the reference tools/tests/test_detector_reference.py holds a faster
detector to (the same spans of the same kinds, text for text). Record it again only for a change
meant to alter findings, and report that change's figures on the labelled set.

    .venv/bin/python tools/personal_data/record_reference.py
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from detector_corpus import everything

from pinworks_common.personal_data import find

OUT = Path(__file__).resolve().parent / "eval" / "detector_reference.jsonl.gz"


def records() -> list[dict[str, Any]]:
    rows = []
    for text, known, regions in everything():
        findings = find(text, known_names=known, regions=regions)
        rows.append({"text": text, "known": list(known), "regions": list(regions),
                     "findings": [[f.kind.value, f.start, f.end] for f in findings]})
    return rows


def main() -> None:
    rows = records()
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    OUT.write_bytes(gzip.compress(lines.encode("utf-8"), compresslevel=9, mtime=0))
    found = sum(len(row["findings"]) for row in rows)
    print(f"{len(rows)} texts, {found} findings -> {OUT}")


if __name__ == "__main__":
    main()
