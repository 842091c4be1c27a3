"""Every message on the wire, as pydantic models.

`TicketSubmission` and `Outcome` are the public contract that support platforms code against;
the rest travel between pinworks services on internal subjects.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
)

from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.jsonlimits import (
    MAX_SUBMISSION_BYTES,
    SUBMISSION_LIMITS,
    JsonLimitError,
    loads_limited,
    storable_text,
    top_level_strings,
)
from pinworks_contracts.subjects import OutcomeStatus

TICKET_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
"""A ticket id as a support platform submits it (no `~`: that is the namespace separator)."""
NAMESPACE_SEPARATOR = "~"
PINWORKS_TICKET_ID_PATTERN = r"^([A-Za-z0-9_-]{1,64}~)?[A-Za-z0-9._:-]{1,128}$"
"""A ticket id inside pinworks: the submitted id, `<platform>~` before it for every support
platform but the default one (`pinworks_ticket_id`)."""
RESERVED_SEPARATOR = (f"ticket_id: '{NAMESPACE_SEPARATOR}' is reserved (pinworks names other "
                      f"platforms' tickets <platform>{NAMESPACE_SEPARATOR}<id>); submit your "
                      "own id without it")
MAX_PAYLOAD_BYTES = MAX_SUBMISSION_BYTES
MAX_BODY_CHARS = 20_000


Money = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
"""USD amounts: exact in Python and Postgres, a JSON number on the wire."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class TicketSubmission(BaseModel):
    """A support ticket as a support platform submits it on `tickets.submitted.<platform>`."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    ticket_id: str = Field(
        pattern=TICKET_ID_PATTERN,
        description="Idempotency key: 1-128 letters, digits and `._:-`. "
        "Submitting the same id again never produces a second outcome or charge.",
    )
    business_unit: str = Field(
        min_length=1, max_length=64, description="The business unit that pays for this ticket."
    )
    body: str = Field(
        min_length=1, max_length=MAX_BODY_CHARS, description="The customer's message (1-20,000)."
    )
    subject: str | None = Field(default=None, max_length=1000, description="Subject line.")
    customer_id: str | None = Field(default=None, max_length=128, description="Customer id.")
    channel: str | None = Field(
        default=None, max_length=64, description="Where the ticket came from (email, chat, ...)."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form JSON object (customer_name, tier, card_last4, ...).",
    )


def pinworks_ticket_id(platform: str, ticket_id: str) -> str:
    """pinworks' own id of support platform `platform`'s ticket `ticket_id`: the default
    platform's ids as submitted, every other platform's as `<platform>~<id>`. Each platform's
    ids are a namespace of their own, so no platform can block or reach another's; a submitted
    id cannot contain `~` (nor a platform name), so no submitter can name another's ticket."""
    if platform == DEFAULT_PLATFORM:
        return ticket_id
    return f"{platform}{NAMESPACE_SEPARATOR}{ticket_id}"


def submitted_ticket_id(platform: str, ticket_id: str) -> str:
    """The id support platform `platform` submitted, from pinworks' own id of its ticket (a
    ticket stored before ids were namespaced keeps the id it was submitted under)."""
    return ticket_id.removeprefix(f"{platform}{NAMESPACE_SEPARATOR}")


class PinworksTicket(TicketSubmission):
    """An accepted submission as it travels between stages: under pinworks' own ticket id."""

    ticket_id: str = Field(
        pattern=PINWORKS_TICKET_ID_PATTERN,
        description="pinworks' id of the ticket: the submitted id, prefixed `<platform>~` for "
        "every support platform but `support` (`pinworks_ticket_id`).",
    )


class IntentScore(BaseModel):
    intent: str = Field(description="An intent label.")
    score: float = Field(ge=0, le=1, description="Calibrated probability of this intent.")


class Classification(BaseModel):
    """The classifier's reading of a ticket."""

    intent: str = Field(description="Best in-scope intent.")
    confidence: float = Field(ge=0, le=1, description="Calibrated probability the intent is right.")
    alternatives: list[IntentScore] = Field(description="Top intents with scores, best first.")
    out_of_scope: bool = Field(description="True when a bank's support desk does not handle this.")
    model_version: str = Field(description="Version of the classifier artifact.")


CustomerSignalKind = Literal["legal_threat", "fraud", "vulnerability", "very_negative"]


class CustomerSignal(BaseModel):
    """One thing in the customer's words that a person should see first."""

    kind: CustomerSignalKind = Field(
        description="legal_threat, fraud, vulnerability or very_negative (sentiment).")
    evidence: str = Field(description="The words that showed it, or the sentiment score.")


class CustomerState(BaseModel):
    """The customer-state reading the classifier stage records for every accepted ticket."""

    signals: list[CustomerSignal] = Field(
        default_factory=list, description="Signals found, in a fixed order; empty when none.")
    sentiment: float = Field(ge=-1, le=1, description="VADER compound sentiment of the text.")
    version: str = Field(description="Version of the reading (lexicons and threshold).")

    def kinds(self) -> set[str]:
        return {signal.kind for signal in self.signals}


class RouteDecision(BaseModel):
    """Which handler the router chose, and why."""

    handler: str = Field(description="Chosen handler (template, kb, llm_small, human, ...).")
    rule: str = Field(description="Name of the policy rule that matched.")
    reason: str = Field(description="Human-readable reason for the choice.")
    policy_version: str = Field(description="Content hash of the routing policy.")
    fallbacks: list[str] = Field(default_factory=list, description="Fallback chain, in order.")


class Draft(BaseModel):
    """A specialist's proposed answer, not yet checked."""

    handler: str = Field(description="Handler that wrote the draft.")
    handler_version: str = Field(description="Version of the handler (template book hash, ...).")
    answer: str = Field(description="The draft answer text.")
    cost_usd: Money = Field(description="Cost of producing this draft.")
    citations: list[str] = Field(default_factory=list, description="Cited passage ids, if any.")
    required_terms: list[str] = Field(
        default_factory=list, description="Terms a complete answer for this intent must mention."
    )
    details: dict[str, Any] = Field(default_factory=dict, description="Handler-specific details.")


class HandlerAttempt(BaseModel):
    """A specialist that tried a ticket and passed it down the route's fallback chain."""

    handler: str = Field(description="Handler that tried the ticket.")
    handler_version: str = Field(description="Its version.")
    result: str = Field(description="declined, unavailable, error or timeout.")
    reason: str = Field(description="Why it did not produce a draft.")
    cost_usd: Money = Field(default=Decimal(0), description="What the attempt cost.")
    automation_attempt: int = Field(
        default=0, ge=0, description="The ticket's automation attempt (`attempt`) it belongs to.")


class TicketEnvelope(BaseModel):
    """What travels between stages: the ticket and everything decided about it so far."""

    ticket: PinworksTicket = Field(description="The accepted submission, under pinworks' id.")
    platform: str = Field(
        default=DEFAULT_PLATFORM,
        description="The support platform that submitted the ticket (as recorded when it was "
        "accepted); its outcomes go to that platform alone.")
    trace_id: str = Field(description="OpenTelemetry trace id shared by every stage.")
    received_at: datetime = Field(description="When the classifier accepted the ticket.")
    classification: Classification | None = Field(default=None, description="Classifier output.")
    customer_state: CustomerState | None = Field(
        default=None,
        description="The classifier stage's customer-state reading, for display; stages that "
        "act on it read the recorded one from the audit, not this copy.")
    route: RouteDecision | None = Field(default=None, description="Router decision.")
    draft: Draft | None = Field(default=None, description="Specialist draft.")
    attempt: int = Field(
        default=0,
        ge=0,
        description="Automation attempt: 0 at first, +1 each time an agent sends the ticket back "
        "to automation with a corrected intent. Keys every stage's records for this attempt.",
    )
    attempts: list[HandlerAttempt] = Field(
        default_factory=list,
        description="Specialists that tried this ticket before and fell back, in order.",
    )

    @field_validator("ticket", mode="before")
    @classmethod
    def _as_pinworks_ticket(cls, value: Any) -> Any:
        """A `TicketSubmission` (a default-platform ticket built in code) is taken as it is."""
        if isinstance(value, TicketSubmission) and not isinstance(value, PinworksTicket):
            return value.model_dump()
        return value


class EscalationRequest(BaseModel):
    """Ask the human queue to take a ticket, with every reason automation gave up."""

    envelope: TicketEnvelope = Field(description="The ticket with its context so far.")
    source_stage: str = Field(description="Stage that escalated (router, verifier, ...).")
    reasons: list[str] = Field(min_length=1, description="Why automation should not answer.")


class Outcome(BaseModel):
    """The public outcome on `tickets.outcome.<status>.<platform>`."""

    ticket_id: str = Field(description="The ticket id as the platform submitted it.")
    pinworks_ticket_id: str | None = Field(
        default=None,
        description="pinworks' own id of the ticket, as `pinworks audit` and the console show "
        "it: the submitted id for the `support` platform, `<platform>~<id>` for any other. "
        "Set on every published outcome (older messages lack it).")
    platform: str = Field(
        default=DEFAULT_PLATFORM,
        description="The support platform whose submission this answers (the last token of the "
        "outcome's subject).")
    status: OutcomeStatus = Field(description="resolved, escalated or rejected.")
    business_unit: str | None = Field(description="Who pays; null if it could not be read.")
    intent: str | None = Field(default=None, description="Classified intent, if classified.")
    confidence: float | None = Field(default=None, description="Classifier confidence.")
    handler: str | None = Field(default=None, description="Handler that produced the answer.")
    answer: str | None = Field(default=None, description="The answer sent (status resolved).")
    reasons: list[str] = Field(
        default_factory=list, description="Why (status escalated or rejected)."
    )
    cost_usd: Money = Field(description="All cost attributed to this ticket so far, in USD.")
    resolved_by: str = Field(description="`automation`, or the id of the agent who resolved it.")
    trace_id: str | None = Field(default=None, description="OpenTelemetry trace id.")
    decided_at: datetime = Field(description="When this outcome was decided (UTC).")


def published_outcome(outcome: Outcome) -> Outcome:
    """An outcome stored under pinworks' ticket id, as its platform receives it: under the id
    that platform submitted, pinworks' own beside it."""
    internal = outcome.pinworks_ticket_id or outcome.ticket_id
    return outcome.model_copy(update={
        "ticket_id": submitted_ticket_id(outcome.platform, internal),
        "pinworks_ticket_id": internal})


def stored_ticket_id(outcome: Outcome) -> str:
    """pinworks' own id of the ticket a published (or stored) outcome answers."""
    return outcome.pinworks_ticket_id or outcome.ticket_id


class DeadLetter(BaseModel):
    """A message a stage could not process within its delivery budget."""

    stage: str = Field(description="Stage that gave up.")
    subject: str = Field(description="Subject the message came from.")
    stream_sequence: int = Field(description="Its sequence in the source stream.")
    deliveries: int = Field(description="How many times it was delivered.")
    error: str = Field(description="The last error.")
    ticket_id: str | None = Field(default=None, description="Ticket id, if it could be read.")
    payload_excerpt: str = Field(description="Start of the raw payload.")


class SubmissionError(ValueError):
    """A submission that cannot be accepted; `reasons` say exactly why."""

    def __init__(self, reasons: list[str], ticket_id: str | None, business_unit: str | None):
        self.reasons = [storable_text(reason) for reason in reasons]
        super().__init__("; ".join(self.reasons))
        self.ticket_id = ticket_id
        self.business_unit = None if business_unit is None else storable_text(business_unit)


def _readable_id(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(TICKET_ID_PATTERN, value):
        return value
    return None


def _forges_namespace(error: Any) -> bool:
    """A submitted id naming a namespace (`<platform>~<id>`): refused with its own reason, and
    never read as an id, so nothing is recorded or answered under another platform's ticket."""
    return (tuple(error["loc"]) == ("ticket_id",) and error["type"] == "string_pattern_mismatch"
            and isinstance(error["input"], str) and NAMESPACE_SEPARATOR in error["input"])


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "payload"
    if error["type"] == "missing":
        return f"{location}: field required"
    return f"{location}: {error['msg']}"


def parse_submission(payload: bytes) -> TicketSubmission:
    """Decode a raw submission under `SUBMISSION_LIMITS`, or raise `SubmissionError` naming
    every problem (and the ticket id and business unit, where they can still be read)."""
    try:
        data = loads_limited(payload, SUBMISSION_LIMITS)
    except JsonLimitError as exc:
        ticket_id, business_unit = _salvage_ids(payload)
        raise SubmissionError([str(exc)], ticket_id, business_unit) from None
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise SubmissionError([f"payload must be a JSON object, got {kind}"], None, None)
    try:
        return TicketSubmission.model_validate(data)
    except ValidationError as exc:
        reasons = [RESERVED_SEPARATOR if _forges_namespace(error) else _describe(error)
                   for error in exc.errors()]
        raise SubmissionError(
            reasons, _readable_id(data.get("ticket_id")), _readable_unit(data.get("business_unit"))
        ) from None


def _readable_unit(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


def _salvage_ids(payload: bytes) -> tuple[str | None, str | None]:
    """Read ticket_id and business_unit from a payload that does not decode within limits."""
    found = top_level_strings(payload, frozenset({"ticket_id", "business_unit"}))
    return _readable_id(found.get("ticket_id")), _readable_unit(found.get("business_unit"))
