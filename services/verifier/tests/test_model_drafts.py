"""The verifier on drafts the real local model wrote (SmolLM2-135M under llama-cpp-python, see
eval/collect_model_drafts.py), labelled by hand (eval/model_draft_labels.json): the set is
well-formed and the checks still catch what they caught when the figures were reported."""

from pathlib import Path

import pytest

from pinworks_verifier.evaluate import evaluate, load_set
from pinworks_verifier.factory import build_checks
from pinworks_verifier.settings import VerifierSettings

SET = Path(__file__).resolve().parents[1] / "eval" / "labelled_model_drafts.jsonl.gz"
CHECK_OF_LABEL = {"ungrounded": "groundedness", "invented_figures": "groundedness",
                  "wrong_promise": "policy", "ignored_question": "completeness", "unfinished": "completeness"}


@pytest.fixture(scope="module")
def records():  # type: ignore[no-untyped-def]
    return load_set(SET)


def test_every_record_is_a_real_model_draft_with_consistent_labels(records) -> None:  # type: ignore[no-untyped-def]
    assert records
    for record in records:
        draft = record["envelope"].draft
        assert draft is not None and draft.handler == "llm_small"
        assert "+llm-prompt-" in draft.handler_version and draft.handler_version.startswith("smollm2")
        assert record["gate"] in ("accepted", "refused")
        assert record["note"], record["id"]
        expected = sorted({CHECK_OF_LABEL[x] for x in record["labels"] if x in CHECK_OF_LABEL})
        assert record["expected_failures"] == expected, record["id"]


def test_the_checks_catch_the_models_bad_drafts(records) -> None:  # type: ignore[no-untyped-def]
    report = evaluate(build_checks(VerifierSettings()), records)
    assert any(r["expected_failures"] for r in records)
    assert report.per_check["groundedness"]["recall"] >= 0.9, report.per_check["groundedness"]
    assert report.per_check["completeness"]["precision"] >= 0.9, report.per_check["completeness"]
    bad_kinds = {k: m for k, m in report.per_kind.items() if k != "grounded"}
    assert all(m["escalated"] >= 0.9 for m in bad_kinds.values()), bad_kinds
