"""Classifier decisions without I/O: what to classify, and what each submission becomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pinworks_contracts.messages import (
    Classification,
    IntentScore,
    SubmissionError,
    TicketSubmission,
)


@dataclass(frozen=True)
class Accepted:
    ticket: TicketSubmission
    platform: str
    """The support platform whose submission subject it came on."""


@dataclass(frozen=True)
class Rejected:
    error: SubmissionError
    payload_bytes: int


Intake = Accepted | Rejected


class ScoredIntent(Protocol):
    @property
    def intent(self) -> str: ...
    @property
    def score(self) -> float: ...


class IntentPrediction(Protocol):
    """What the model returns per text (its `Prediction`), described here so the domain needs
    no numpy."""

    @property
    def intent(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def alternatives(self) -> Sequence[ScoredIntent]: ...
    @property
    def out_of_scope(self) -> bool: ...
    @property
    def second_stage(self) -> bool: ...
    @property
    def cost_ms(self) -> float: ...


def text_to_classify(ticket: TicketSubmission) -> str:
    """The text the model reads: subject and body, as a customer would read them."""
    if ticket.subject and ticket.subject.strip() and ticket.subject.strip() not in ticket.body:
        return f"{ticket.subject.strip()}. {ticket.body}"
    return ticket.body


def to_classification(prediction: IntentPrediction, model_version: str) -> Classification:
    """Convert the model's prediction to the contract."""
    alternatives = [
        IntentScore(intent=alt.intent, score=round(float(alt.score), 6)) for alt in prediction.alternatives
    ]
    return Classification(
        intent=prediction.intent,
        confidence=round(float(prediction.confidence), 6),
        alternatives=alternatives,
        out_of_scope=bool(prediction.out_of_scope),
        model_version=model_version,
    )


def first_occurrences(ticket_ids: Sequence[str]) -> list[bool]:
    """Mark the first appearance of each id in a batch; later ones are duplicate submissions."""
    seen: set[str] = set()
    marks = []
    for ticket_id in ticket_ids:
        marks.append(ticket_id not in seen)
        seen.add(ticket_id)
    return marks


def classification_reason(classification: Classification, second_stage: bool = False) -> str:
    runner_up = classification.alternatives[1] if len(classification.alternatives) > 1 else None
    text = f"intent {classification.intent} at confidence {classification.confidence:.3f}"
    if runner_up is not None:
        text += f" (runner-up {runner_up.intent} at {runner_up.score:.3f})"
    if classification.out_of_scope:
        text += "; flagged out of scope"
    if second_stage:
        text += "; re-scored by the sentence-embedding stage"
    return text


ALL_UNITS = "*"
"""In a platform's units: every business unit; `prefix*` is every unit starting with `prefix`."""


def _unit_matches(pattern: str, unit: str) -> bool:
    if pattern.endswith(ALL_UNITS):
        return unit.startswith(pattern[:-1])
    return unit == pattern


def binding_refusal(platform: str, business_unit: str,
                    platform_units: Mapping[str, Sequence[str]]) -> str | None:
    """Why `platform` may not submit for `business_unit` (None: it may). The platform is the
    one its submission subject names: NATS lets only that platform's identity publish there,
    while the payload's business unit is whatever the sender wrote."""
    units = platform_units.get(platform)
    if not units:
        return f"business_unit: support platform {platform!r} is bound to no business unit"
    if not any(_unit_matches(pattern, business_unit) for pattern in units):
        return (f"business_unit: support platform {platform!r} may not submit for business unit "
                f"{business_unit!r}")
    return None
