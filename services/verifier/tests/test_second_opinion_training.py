"""Out-of-fold second-opinion readings: no ticket is read by a reader that trained on it, and the
stored readings beside the calibration set are the calibration set's tickets and folds."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pinworks_verifier.second_opinion import SecondOpinionModel, SecondReading
from pinworks_verifier.second_opinion_training import (
    EVERY_ROW,
    Query,
    out_of_fold_readings,
    train_reader,
)

CALIBRATION = Path(__file__).resolve().parents[3] / "services/classifier/data/calibration"


class TaggedReader(SecondOpinionModel):
    """A reader that names the training call that made it instead of reading."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def read(self, text: str, intent: str) -> SecondReading:
        return SecondReading(self.tag, 0.0, ())


def test_no_ticket_is_read_by_a_reader_that_trained_on_it() -> None:
    texts = [f"ticket number {i}" for i in range(40)]
    labels = ["a", "b"] * 20
    folds = [i % 5 for i in range(40)]
    trained: dict[str, set[str]] = {}

    def spy(train_texts: Sequence[str], train_labels: Sequence[str],
            classes: Sequence[str]) -> tuple[SecondOpinionModel, np.ndarray]:
        tag = f"call{len(trained)}"
        trained[tag] = set(train_texts)
        assert list(classes) == ["a", "b"]
        return TaggedReader(tag), np.zeros(0)

    queries = [Query(texts[i], labels[i], i) for i in range(40)] + [Query("an outside ticket", "a")]
    readings = out_of_fold_readings(texts, labels, folds, queries, trainer=spy)
    assert len(trained) == 6  # one reader per fold and one on every row, each trained once
    for query, reading in zip(queries, readings, strict=True):
        used = trained[reading.best]
        if query.training_row is None:
            assert reading.reader == EVERY_ROW and used == set(texts)
        else:
            fold = folds[query.training_row]
            assert reading.reader == str(fold)
            assert query.text not in used
            assert used == {t for t, f in zip(texts, folds, strict=True) if f != fold}


def test_a_fold_reader_reads_as_a_reader_trained_without_that_fold() -> None:
    texts = ["card has not arrived", "my card never came", "where is my new card",
             "card still not here", "change my pin please", "how to change pin",
             "pin change at atm", "new pin needed"]
    labels = ["card_arrival"] * 4 + ["change_pin"] * 4
    folds = [0, 1, 0, 1, 0, 1, 0, 1]
    (reading,) = out_of_fold_readings(texts, labels, folds, [Query(texts[0], "change_pin", 0)])
    own, _mass = train_reader([t for t, f in zip(texts, folds, strict=True) if f != 0],
                              [x for x, f in zip(labels, folds, strict=True) if f != 0],
                              sorted(set(labels)))
    expected = own.read(texts[0], "change_pin")
    assert (reading.reader, reading.best, reading.gap) == ("0", expected.best, expected.gap)


def test_the_stored_readings_are_the_calibration_sets_tickets_and_folds() -> None:
    with (CALIBRATION / "predictions.csv").open(newline="", encoding="utf-8") as handle:
        predictions = list(csv.DictReader(handle))
    with (CALIBRATION / "second_opinion.csv").open(newline="", encoding="utf-8") as handle:
        readings = list(csv.DictReader(handle))
    assert len(readings) == len(predictions)
    for prediction, reading in zip(predictions, readings, strict=True):
        assert (reading["source"], reading["row"], reading["intent"]) == (
            prediction["source"], prediction["row"], prediction["intent"])
        assert reading["reader"] == (prediction["fold"] if prediction["source"] == "banking77_train"
                                     else EVERY_ROW)
        gap = float(reading["gap"])
        assert gap >= 0 and (gap == 0 or reading["best"] != reading["intent"])  # 0: a tie or agreement
