"""The console's REST API request and response models (OpenAPI at `/openapi.json`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class SignIn(BaseModel):
    name: str = Field(description="Agent name.")
    password: str = Field(description="Agent password.")


class TokenRequest(SignIn):
    kind: Literal["api", "cli"] = Field(
        "api", description="`cli` for `pinworks login` on an agent's terminal: the token lasts "
        "PINWORKS_AGENT_TOKEN_HOURS; `api` (scripts) lasts ESCALATION_SESSION_HOURS.")


class Me(BaseModel):
    agent: str = Field(description="The signed-in agent.")
    business_units: list[str] = Field(description="Business units whose tickets they work.")
    csrf_token: str | None = Field(None, description="With the session cookie: send it as "
                                   "`X-CSRF-Token` on every state-changing call.")
    expires_at: datetime | None = Field(None, description="When the session ends.")


class BearerToken(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer TOKEN`; shown only once.")
    agent: str = Field(description="The signed-in agent.")
    business_units: list[str] = Field(description="Business units whose tickets they work.")
    expires_at: datetime = Field(description="When the token stops working; "
                                 "`DELETE /api/session` ends it sooner.")


class QueueEntry(BaseModel):
    ticket_id: str
    business_unit: str
    status: str = Field(description="open, claimed, resolved or returned (sent back to "
                        "automation with a corrected intent).")
    priority: int = Field(description="0-100, higher first.")
    tier: str | None = Field(description="Customer tier from the ticket metadata.")
    source_stage: str = Field(description="Stage that escalated the ticket.")
    reasons: list[str] = Field(description="Why automation did not answer.")
    claimed_by: str | None = Field(description="Agent holding a live lease, if any.")
    lease_expires_at: str | None
    sla_due_at: str | None = Field(description="When a person should have answered (UTC).")
    overdue: bool
    sla_status: str | None = Field(
        description="met (answered in time), due (waiting, in time) or breached.")
    priority_because: list[str] = Field(
        description="What put the ticket ahead: customer-state signals, tier.")
    intent: str | None
    intent_label: str = Field(description="The intent as a person reads it.")
    customer_id: str | None
    confidence: float | None
    subject: str | None
    created_at: str | None
    resolved_by: str | None
    resolved_at: str | None
    trace_id: str | None


class TicketDetail(QueueEntry):
    envelope: dict[str, Any] = Field(
        description="The ticket, its classification with alternatives, the route and the draft.")
    corrections: list[dict[str, Any]] = Field(description="Intent corrections by agents.")
    reply: str | None = Field(description="The agent's reply, once resolved.")
    cost_usd: float = Field(description="All cost attributed to the ticket so far.")
    costs: list[dict[str, Any]]
    decisions: list[dict[str, Any]] = Field(description="Every stage's decision with its reason.")
    outcomes: list[dict[str, Any]]
    actions: list[dict[str, Any]] = Field(description="Who did what, when (accountability).")
    customer_state: dict[str, Any] | None = Field(
        description="The classifier stage's recorded customer-state reading.")
    suggestions: list[dict[str, Any]] = Field(
        description="Suggested replies, best first: templates, help-centre passages with "
        "citations, specialists' drafts (a model's marked unverified).")
    earlier_tickets: list[dict[str, Any]] = Field(
        description="The customer's other tickets (same customer_id) with their outcomes.")


class AssistUsefulness(BaseModel):
    intent: str
    intent_label: str
    resolved: int = Field(description="Agent replies with suggestions on offer.")
    from_suggestion: int = Field(description="Replies the agent started from a suggestion.")
    mean_similarity: float | None = Field(
        description="Mean similarity of the sent reply to the suggestion it started from "
        "(1.0 = sent unchanged).")
    unchanged: int = Field(description="Suggestions sent without an edit.")
    mean_closest_similarity: float | None = Field(
        description="Mean similarity of every sent reply to the closest suggestion.")


class Reply(BaseModel):
    reply: str = Field(min_length=1, max_length=20_000, description="The answer to the customer.")
    suggestion: str | None = Field(
        default=None, max_length=200,
        description="Source of the suggested reply the agent started from (`template:<intent>`, "
        "`kb`, `draft:<handler>`), if any: recorded with how far the reply differs from it.")
    intent: str | None = Field(
        default=None, max_length=200,
        description="What the ticket was really about, when not its classification: one the "
        "classifier knows (GET /api/intents). An automatic answer the ticket had with another "
        "intent counts as wrong in the live quality estimate.")


class Reopening(BaseModel):
    reason: str = Field(min_length=1, max_length=2_000,
                        description="Why the automatic answer needs a person (kept in the "
                        "ticket's reasons and accountability).")


class Reassignment(BaseModel):
    agent: str = Field(description="The colleague who takes the ticket.")


class Correction(BaseModel):
    intent: str = Field(description="The intent the ticket really has: one the classifier "
                        "knows (GET /api/intents); a typo is refused with the nearest ones.")


class SentBack(BaseModel):
    ticket_id: str
    example_key: str = Field(description="Key of the labelled example recorded.")
    from_intent: str | None
    to_intent: str


class ResolvedOutcome(BaseModel):
    outcome: dict[str, Any] = Field(description="The human `resolved` outcome, as published.")


class QualityReview(BaseModel):
    id: int
    ticket_id: str
    attempt: int = Field(description="Which attempt's automatic answer (0: the first).")
    business_unit: str
    intent: str | None = Field(description="The intent the automatic answer was given for.")
    intent_label: str = Field(description="That intent as a person reads it.")
    confidence: float | None = Field(description="The classifier's confidence in it.")
    handler: str | None = Field(description="Who answered: template, kb, llm_small, ...")
    answer: str | None = Field(description="The automatic answer the customer got.")
    source: str = Field(description="sample (drawn at random for review) or correction (an "
                        "agent gave the ticket another intent elsewhere).")
    status: str = Field(description="pending, right or wrong.")
    correct_intent: str | None = Field(description="For a wrong answer: the intent that was right.")
    reviewed_by: str | None
    reviewed_at: str | None
    created_at: str
    subject: str | None = Field(description="The customer's subject line.")
    body: str | None = Field(description="What the customer wrote.")


class QualityVerdict(BaseModel):
    verdict: Literal["right", "wrong"] = Field(
        description="Whether the automatic answer was right.")
    intent: str | None = Field(
        default=None, max_length=200,
        description="For `wrong`: the intent that was right, one the classifier knows "
        "(GET /api/intents; 422 names the nearest). `right` takes none.")
