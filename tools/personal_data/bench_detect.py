"""CPU cost of the personal-data detector per text, by kind of text: µs of this process's CPU
per call, the median of several rounds over the same texts (a benchmark to run by hand, not a
timed test). The detector's per-text cache is bypassed: every call searches.

    .venv/bin/python tools/personal_data/bench_detect.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from detector_corpus import LOG_LINES, articles, drafts
from eval_set import load

from pinworks_cli.bench_texts import MULTI_SENTENCE, ONE_OR_TWO_SENTENCES, SHORT_QUERIES
from pinworks_common.personal_data import detect

REGIONS = ("GB", "US")


def kinds() -> dict[str, list[str]]:
    examples = load()
    with_data = [e.text for e in examples if e.spans]
    return {
        "short query": [body for _, body in SHORT_QUERIES],
        "ticket, 1-2 sentences": [body for _, body in ONE_OR_TWO_SENTENCES],
        "ticket, several sentences": [body for _, body in MULTI_SENTENCE],
        "labelled, no personal data": [e.text for e in examples if not e.spans],
        "labelled, with personal data": with_data,
        "labelled set, all": [e.text for e in examples],
        "template draft (~700 chars)": [t for t in drafts() if 550 <= len(t) <= 900],
        "help-centre paragraph": articles(),
        "log line, clean": [line for line in LOG_LINES if "@" not in line and "+44" not in line],
        "log line, card+e-mail+name": [LOG_LINES[3]],
        "log line, phone": [LOG_LINES[6]],
    }


def per_text(texts: list[str], rounds: int, search: Callable[[str], object]) -> float:
    """Median over ``rounds`` of the CPU µs per text, each round calling ``search`` at least
    200 times."""
    repeat = max(1, 200 // len(texts))
    for text in texts:
        search(text)  # warm: gazetteers and patterns load once
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(repeat):
            for text in texts:
                search(text)
        samples.append((time.process_time() - started) / (repeat * len(texts)))
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    def search(text: str) -> object:
        return detect._find(text, (), REGIONS)
    print(f"{'kind':30} {'texts':>5} {'chars':>6} {'µs CPU per text':>16}  (median of {rounds} rounds)")
    for kind, texts in kinds().items():
        chars = sum(map(len, texts)) / len(texts)
        print(f"{kind:30} {len(texts):5d} {chars:6.0f} {per_text(texts, rounds, search):16.1f}")


if __name__ == "__main__":
    main()
