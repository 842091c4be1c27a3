"""The commitment reader shipped in the package, and the policy check that uses it."""

from __future__ import annotations

import pytest

from pinworks_verifier.policy import PolicyCheck
from pinworks_verifier.promises import PromiseReader, Reading

from .test_content_checks import KB_ANSWER, envelope

READER = PromiseReader.load()
PADDING = ("and cards sent by standard delivery usually arrive 3-5 working days after dispatch "
           "in the UK")


@pytest.mark.parametrize(("sentence", "kind"), [
    ("We credit your account with the money you lost", "guaranteed_refund"),
    ("This is free of charge forever", "fee_waiver"),
])
def test_a_promise_outside_the_patterns_padded_with_passage_words_fails(sentence: str,
                                                                        kind: str) -> None:
    answer = KB_ANSWER.replace("Thanks for getting in touch.", f"{sentence}, {PADDING}.")
    assert PolicyCheck().run(envelope(answer)).passed, "the patterns alone let it through"
    result = PolicyCheck(reader=READER).run(envelope(answer))
    assert not result.passed
    assert result.details["promises"] == [kind]
    assert "read as a promise" in result.reasons[0]
    entitled = PolicyCheck({"kb": [kind]}, reader=READER).run(envelope(answer))
    assert entitled.passed, entitled.reasons


@pytest.mark.parametrize("sentence", [
    "We can't promise a refund, but we'll look into it.",
    "Refunds go back to the card you paid with.",
    "Unfortunately we cannot waive this fee.",
])
def test_non_promises_are_not_read_as_promises(sentence: str) -> None:
    assert READER.promises(sentence) is None, READER.read(sentence)


def test_a_correct_kb_draft_passes_with_the_reader() -> None:
    result = PolicyCheck(reader=READER).run(envelope())
    assert result.passed, result.reasons
    assert result.version == f"policy-3[{READER.version}]"


def test_the_artifact_records_its_calibration() -> None:
    assert 0.5 <= READER.threshold < 1
    assert READER.meta["calibration"]["oof_false_alarm_bank"] <= 0.02


REVIEWED = "For pounds, you will see your sort code and account number."
"""A sentence of the help-centre articles the artifact was built from."""


def test_the_banks_reviewed_sentences_are_recognised_word_for_word() -> None:
    assert READER.is_reviewed(REVIEWED)
    assert READER.is_reviewed("for pounds you will see your sort code and account number")
    assert not READER.is_reviewed("For pounds, you will see your sort code.")
    assert not READER.is_reviewed("We credit your account with the money you lost.")


def test_a_promise_added_to_a_reviewed_sentence_is_still_read() -> None:
    promise = "We credit your account with the money you lost"
    answer = KB_ANSWER.replace("Thanks for getting in touch.",
                               f"{REVIEWED[:-1]}, and {promise[0].lower()}{promise[1:]}.")
    result = PolicyCheck(reader=READER).run(envelope(answer))
    assert not result.passed
    assert result.details["promises"] == ["guaranteed_refund"]
    answer = KB_ANSWER.replace("Thanks for getting in touch.", REVIEWED)
    assert PolicyCheck(reader=READER).run(envelope(answer)).passed


def test_a_sentence_quoted_from_the_drafts_own_passages_is_not_read() -> None:
    sentence = "We credit your account with the money you lost."
    assert READER.promises(sentence) is not None
    answer = KB_ANSWER.replace("Thanks for getting in touch.", sentence)
    assert not PolicyCheck(reader=READER).run(envelope(answer)).passed
    quoted = {"passages": [{"passage_id": "p#1", "text": f"Card payments. {sentence}"}]}
    result = PolicyCheck(reader=READER).run(envelope(answer, details=quoted))
    assert result.passed, result.reasons


def test_the_reader_is_on_by_default() -> None:
    from pinworks_verifier.factory import build_checks
    from pinworks_verifier.settings import VerifierSettings

    policy = next(c for c in build_checks(VerifierSettings()) if isinstance(c, PolicyCheck))
    assert policy.reader is not None


class _CountingReader(PromiseReader):
    """The shipped reader, recording every sentence or clause it is asked to read."""

    def __init__(self) -> None:
        self.__dict__.update(READER.__dict__)
        self.asked: list[str] = []

    def promises(self, sentence: str) -> Reading | None:
        self.asked.append(sentence)
        return super().promises(sentence)


def test_each_sentence_and_clause_is_read_once() -> None:
    """A sentence with no clause to split off was read twice (as itself and as its only
    clause), and a clause repeated in a sentence once per repetition; the verdict is the same."""
    whole = "We credit your account with the money you lost."
    repeated = "Please check the app, then check the app, and check the app again today."
    for sentence, expected in ((whole, [whole]),
                               (repeated, [repeated, "Please check the app",
                                           "then check the app", "check the app again today."])):
        reader = _CountingReader()
        answer = KB_ANSWER.replace("Thanks for getting in touch.", sentence)
        result = PolicyCheck(reader=reader).run(envelope(answer))
        assert [asked for asked in reader.asked if asked in expected] == expected
        assert result == PolicyCheck(reader=READER).run(envelope(answer))


@pytest.mark.parametrize(("text", "normal"), [
    ("We can't cancel it.", "we cannot cancel it"),
    ("We CANT and wont, won\u2019t", "we cannot and will not will not"),
    ("I'm sure they'd say we'll, you're, we've", "i am sure they would say we will you are we have"),
    ("Pay £5, 2.5% or 1,000.50 by 3rd", "pay <num> <num> % or <num> by 3rd"),
    ("Nothing to spell out here", "nothing to spell out here"),
])
def test_normal_form_spells_out_contractions_with_or_without_apostrophes(text: str,
                                                                          normal: str) -> None:
    """A contraction is looked for only in a text holding its letters ("cant" has no
    apostrophe), and a word is tested as a figure only when it starts like one."""
    from pinworks_verifier.promises import normal_form

    assert normal_form(text) == normal


@pytest.mark.parametrize("sentence", [
    "We guarantee you will get your money back.", "We will refund you today.",
    "We'll waive the fee this time.", "We will remove the charge for you.",
    "As a goodwill gesture we added it.", "We'll compensate you.",
    "It is guaranteed to arrive tomorrow.", "WE WILL REFUND YOU.", "Thanks for getting in touch.",
    "We can't promise a refund.", "The Direct Debit Guarantee protects you.",
])
def test_the_one_search_for_any_pattern_agrees_with_every_pattern(sentence: str) -> None:
    from pinworks_verifier.policy import _ANY_PROMISE, PROMISES

    each = any(pattern.search(sentence) for patterns in PROMISES.values() for pattern in patterns)
    assert bool(_ANY_PROMISE.search(sentence)) == each
