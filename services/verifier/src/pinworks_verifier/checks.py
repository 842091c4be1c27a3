"""Verifier checks without I/O. Each check is versioned and returns a pass or its reasons."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from pinworks_common.customer_state import NEGATIVE_THRESHOLD, CustomerStateReader, state_reasons
from pinworks_contracts.messages import TicketEnvelope
from pinworks_verifier.intent_scorer import IntentLikelihoods, NaiveBayesIntentScorer
from pinworks_verifier.result import Check, CheckResult
from pinworks_verifier.text import body_paragraphs, main_text

__all__ = [
    "Check", "CheckResult", "CompletenessCheck", "CustomerStateCheck", "DisagreementCheck",
    "failing_reasons", "main_text", "verify",
]

PLACEHOLDER = re.compile(r"\{[^}]*\}|\[\[|\]\]|<[A-Z_]{3,}>|\bTODO\b|\bTBD\b|lorem ipsum|\bNone\b")
SENTENCE_END = re.compile(r"[.!?)\"']\s*$")
MIN_ANSWER_CHARS = 60


class CompletenessCheck:
    """The draft exists, is finished, and talks about what the customer asked.

    "What the customer asked" is judged by two small naive-Bayes scorers trained from the
    project's data (`intent_scorer.py`): the ticket must read as the classified intent (its
    log-likelihood within `ticket_margin` of the best intent's) and the draft must read as an
    answer to it (within `answer_margin`). Without scorers only the text checks run.
    """

    name = "completeness"
    version = "completeness-2"

    def __init__(self, ticket_model: NaiveBayesIntentScorer | None = None,
                 answer_model: NaiveBayesIntentScorer | None = None,
                 ticket_margin: float | None = None, answer_margin: float | None = None) -> None:
        self.ticket_model = ticket_model
        self.answer_model = answer_model
        self.ticket_margin = (ticket_margin if ticket_margin is not None else
                              _calibrated(ticket_model))
        self.answer_margin = (answer_margin if answer_margin is not None else
                              _calibrated(answer_model))
        models = [m.version for m in (ticket_model, answer_model) if m is not None]
        if models:
            self.version = f"completeness-2[{','.join(models)}]"

    def run(self, envelope: TicketEnvelope) -> CheckResult:
        draft = envelope.draft
        intent = envelope.classification.intent if envelope.classification else "?"
        reasons: list[str] = []
        details: dict[str, object] = {}
        answer = (draft.answer if draft else "").strip()
        if not answer:
            reasons.append("completeness: the draft is empty")
            return CheckResult(self.name, self.version, False, tuple(reasons))
        if len(answer) < MIN_ANSWER_CHARS:
            reasons.append(f"completeness: the draft is only {len(answer)} characters")
        placeholder = PLACEHOLDER.search(answer)
        if placeholder:
            reasons.append(f"completeness: unfilled placeholder {placeholder.group(0)!r}")
        if not SENTENCE_END.search(main_text(answer)):
            reasons.append("completeness: the draft looks truncated (no closing punctuation)")
        terms = [term.lower() for term in (draft.required_terms if draft else [])]
        if terms and not any(term in answer.lower() for term in terms):
            reasons.append(
                f"completeness: the draft mentions none of the terms an answer about "
                f"{intent} needs ({', '.join(terms)})"
            )
        reasons.extend(self._reading_reasons(envelope, intent, answer, details))
        return CheckResult(self.name, self.version, not reasons, tuple(reasons), details)

    def _reading_reasons(self, envelope: TicketEnvelope, intent: str, answer: str,
                         details: dict[str, object]) -> list[str]:
        """The scorers' verdicts: the ticket must read as `intent`, the draft as an answer to it."""
        ticket = envelope.ticket
        readings = (
            _Reading(self.ticket_model, self.ticket_margin, "ticket",
                     " ".join(filter(None, [ticket.subject, ticket.body])),
                     f"the ticket does not read as {intent}", "it reads as", shown=3),
            _Reading(self.answer_model, self.answer_margin, "answer",
                     "\n\n".join(body_paragraphs(answer)),
                     f"the draft does not answer {intent}", "it reads as an answer about", shown=2),
        )
        reasons = []
        for reading in readings:
            if reading.model is None or reading.limit is None:
                continue
            margin, scores = _reading(reading.model, reading.text, intent, reading.name, details)
            if margin < reading.limit:
                best = ", ".join(label for label, _ in scores.best(reading.shown))
                reasons.append(f"completeness: {reading.failure} (margin {margin:.2f} < "
                               f"{reading.limit:.2f}); {reading.reads_as} {best}")
        return reasons


class _Reading(NamedTuple):
    """One scorer's check: `text` must read as the intent within `limit`; `failure` and
    `reads_as` word the reason, which names the `shown` best readings."""

    model: NaiveBayesIntentScorer | None
    limit: float | None
    name: str
    text: str
    failure: str
    reads_as: str
    shown: int


def _reading(model: NaiveBayesIntentScorer, text: str, intent: str, name: str,
             details: dict[str, object]) -> tuple[float, IntentLikelihoods]:
    """How far `text` is from reading as `intent` (0: its best reading), recorded in `details`
    under `<name>_margin` with its three best readings."""
    scores = model.score(text)
    margin = scores.margin(intent)
    details[f"{name}_margin"] = round(margin, 3)
    details[f"{name}_reads_as"] = scores.best(3)
    return margin, scores


def _calibrated(model: NaiveBayesIntentScorer | None) -> float | None:
    if model is None:
        return None
    calibration = model.meta.get("calibration", {})
    value = calibration.get("margin_threshold") if isinstance(calibration, dict) else None
    return float(value) if value is not None else None


class CustomerStateCheck:
    """Very unhappy, threatening, defrauded or vulnerable customers go to a person.

    The reading is the shared one (`pinworks_common.customer_state`) the classifier stage
    records for every ticket, so a ticket that escalates before it reaches the verifier gets
    the same reading: the verifier stage hands the check the recorded reading in the envelope
    (`provenance.recorded_envelope` puts it there in place of anything the message carried),
    and the check uses it when this reader made it (the same version, threshold included);
    without one, or from another reader, it reads the ticket text itself.
    """

    name = "customer_state"
    version = "customer-state-3"

    def __init__(self, negative_threshold: float = NEGATIVE_THRESHOLD) -> None:
        self.negative_threshold = negative_threshold
        self.reader = CustomerStateReader(negative_threshold)

    def run(self, envelope: TicketEnvelope) -> CheckResult:
        state = envelope.customer_state
        if state is None or state.version != self.reader.version:
            state = self.reader.read(envelope.ticket.subject, envelope.ticket.body)
        reasons = state_reasons(state)
        return CheckResult(self.name, self.version, not reasons, tuple(reasons),
                           {"sentiment": state.sentiment})


class DisagreementCheck:
    """The specialist's own reading of the intent (`draft.details["specialist_intent"]`, a
    string or a list of intents its source covers) must include the classifier's intent."""

    name = "disagreement"
    version = "disagreement-1"

    def run(self, envelope: TicketEnvelope) -> CheckResult:
        draft = envelope.draft
        own = draft.details.get("specialist_intent") if draft else None
        if own is None or envelope.classification is None:
            return CheckResult(self.name, self.version, True, (), {"applies": False})
        readings = [own] if isinstance(own, str) else [str(i) for i in own]
        intent = envelope.classification.intent
        if intent in readings:
            return CheckResult(self.name, self.version, True, (), {"specialist_intent": own})
        return CheckResult(self.name, self.version, False, (
            f"disagreement: the {draft.handler if draft else '?'} specialist read the ticket as "
            f"{', '.join(readings)}, the classifier as {intent}",), {"specialist_intent": own})


def verify(checks: Sequence[Check], envelope: TicketEnvelope) -> list[CheckResult]:
    return [check.run(envelope) for check in checks]


def failing_reasons(results: Sequence[CheckResult]) -> list[str]:
    return [reason for result in results for reason in result.reasons]
