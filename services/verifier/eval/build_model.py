"""Train the verifier's two intent scorers and calibrate their thresholds.

    .venv/bin/python services/verifier/eval/build_model.py

- `ticket_intent`: reads a *ticket* (BANKING77 train split, 70%).
- `answer_intent`: reads a *draft* (every template's text and every help-centre paragraph,
  labelled with the intents they answer).
Thresholds are calibrated on the BANKING77 calibration split (15%): the ticket margin is set so
that about `TICKET_FALSE_ALARM` of right-intent tickets fall below it. The test split (15%) is
left for `build_set.py`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ARTIFACTS,
    BANKING77,
    TEMPLATES,
    articles,
    banking77,
    bare_template,
    template_entries,
)

from pinworks_verifier.intent_scorer import NaiveBayesIntentScorer  # noqa: E402

TICKET_FALSE_ALARM = 0.03
ANSWER_FALSE_ALARM = 0.01
TICKET_ALPHA = 0.02
"""Additive smoothing; picked among 0.02-1.0 for the best wrong-intent catch at 3% false alarm."""


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    rows = list(banking77())
    labels = sorted({intent for _, intent, _ in rows})
    train = [(text, intent) for text, intent, split in rows if split == "train"]
    calibration = [(text, intent) for text, intent, split in rows if split == "calibration"]
    ticket_model = NaiveBayesIntentScorer.train(train, labels, alpha=TICKET_ALPHA)
    margins = np.array([ticket_model.score(text).margin(intent) for text, intent in calibration])
    ticket_threshold = float(np.quantile(margins, TICKET_FALSE_ALARM))
    top1 = float((margins == 0).mean())
    ticket_model.meta.update({
        "task": "ticket -> BANKING77 intent (multinomial naive Bayes)",
        "training_data": {"banking77/train.csv": sha(BANKING77), "split": "sha256(text) % 100 < 70",
                          "rows": len(train)},
        "calibration": {"split": "70 <= sha256(text) % 100 < 85", "rows": len(calibration),
                        "top1_accuracy": round(top1, 4), "false_alarm": TICKET_FALSE_ALARM,
                        "margin_threshold": round(ticket_threshold, 4)},
    })
    ticket_model.save(ARTIFACTS, "ticket_intent")

    entries = template_entries()
    answers: list[tuple[str, str]] = []
    for intent, entry in entries.items():
        text = bare_template(entry)
        answers.append((text, intent))
        answers.extend((paragraph, intent) for paragraph in text.split("\n\n"))
    for article in articles():
        for intent in article["intents"]:
            answers.append((" ".join(article["paragraphs"]), intent))
            answers.extend((paragraph, intent) for paragraph in article["paragraphs"])
    answer_model = NaiveBayesIntentScorer.train(answers, labels, min_df=1, chars=False)
    # held-in calibration: the margin of the right intent for every whole answer text
    whole = [(t, i) for t, i in answers if "\n\n" in t or len(t) > 400]
    answer_margins = np.array([answer_model.score(t).margin(i) for t, i in whole])
    answer_threshold = float(np.quantile(answer_margins, ANSWER_FALSE_ALARM)) - 0.5
    answer_model.meta.update({
        "task": "draft -> BANKING77 intent it answers (multinomial naive Bayes)",
        "training_data": {"templates/intents.yaml": sha(TEMPLATES),
                          "kb/articles": len(articles()), "rows": len(answers)},
        "calibration": {"margin_threshold": round(answer_threshold, 4),
                        "note": "1st percentile of whole-answer margins, minus 0.5"},
    })
    answer_model.save(ARTIFACTS, "answer_intent")
    print(json.dumps({"ticket": ticket_model.meta["calibration"],
                      "answer": answer_model.meta["calibration"]}, indent=1))


if __name__ == "__main__":
    main()
