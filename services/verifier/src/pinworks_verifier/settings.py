"""Verifier configuration, read from the environment in `create_app()`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from pinworks_common.settings import CommonSettings


class VerifierSettings(CommonSettings):
    negative_sentiment_threshold: float = Field(
        -0.8, ge=-1, le=1, validation_alias="VERIFIER_NEGATIVE_SENTIMENT")
    """VADER compound score at or below which a ticket goes to a person (on the labelled set mild
    frustration reaches -0.77, abusive messages are at most -0.85)."""
    model_dir: Path | None = Field(None, validation_alias="VERIFIER_MODEL_DIR")
    """Directory with ticket_intent.{json,npz} and answer_intent.{json,npz} (and
    second_opinion.{json,npz} when the second opinion is on); unset means the scorers shipped
    in the package."""
    ticket_margin: float | None = Field(None, le=0, validation_alias="VERIFIER_TICKET_MARGIN")
    """Completeness: the ticket's log-likelihood for the classified intent may trail the best
    intent's by at most this much; unset means the artifact's calibrated value (about 3% of
    right-intent tickets below it)."""
    answer_margin: float | None = Field(None, le=0, validation_alias="VERIFIER_ANSWER_MARGIN")
    """Completeness: the same for the draft read as an answer; unset means the artifact's
    calibrated value."""
    second_opinion: bool = Field(False, validation_alias="VERIFIER_SECOND_OPINION")
    """Run the second-opinion check (a complement naive-Bayes reading of the ticket, independent
    of the classifier's models). Off by default: on fold 0 it catches a few of the classifier's
    confident mistakes for about as many right answers escalated (services/verifier/eval/README.md)."""
    second_opinion_margin: float | None = Field(None, gt=0, validation_alias="VERIFIER_SECOND_OPINION_MARGIN")
    """Second opinion: the log-likelihood gap by which the reader must prefer another intent to
    fail the draft; unset means the artifact's (about 1% of the classifier's right automatic
    answers on fold 0's validation half reach it)."""
    grounded_handlers: list[str] = Field(["kb", "llm"], validation_alias="VERIFIER_GROUNDED_HANDLERS")
    """Handlers (and their `<name>_*` variants) whose every sentence must be supported by cited
    passages (JSON list)."""
    min_support: float = Field(0.6, gt=0, le=1, validation_alias="VERIFIER_MIN_SUPPORT")
    """Groundedness: share of a sentence's content words one cited passage must hold."""
    pii_allowed: list[str] = Field(["+44 20 7946 0321"], validation_alias="VERIFIER_PII_ALLOWED")
    """The bank's own published contact details a draft may contain (JSON list)."""
    promise_reader: bool = Field(True, validation_alias="VERIFIER_PROMISE_READER")
    """Policy: also read each sentence and clause with the commitment reader (promises by
    meaning, not by word list; `eval/build_promise_model.py`), except sentences that are word for
    word the bank's reviewed ones or the draft's passages. On by default: on the held-out
    paraphrases precision 0.946, recall 0.855 (patterns alone: 0), and it escalates none of the
    1,736 correct drafts (`eval/measure_promises.py`)."""
    promise_threshold: float | None = Field(None, gt=0, lt=1,
                                            validation_alias="VERIFIER_PROMISE_THRESHOLD")
    """Policy: P(promise) at which the reader calls a sentence a promise; unset means the
    artifact's calibrated value (about 1% of non-promise sentences out of fold)."""
    policy_entitlements: dict[str, list[str]] = Field(
        default_factory=dict, validation_alias="VERIFIER_POLICY_ENTITLEMENTS")
    """Promise kinds each handler may make, e.g. {"human_macro": ["fee_waiver"]} (JSON); kinds:
    guaranteed_refund, fee_waiver, compensation, guaranteed_outcome. A draft may also declare its
    own in details.entitlements."""
