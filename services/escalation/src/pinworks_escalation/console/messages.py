"""The messages the console's pages show, chosen by fixed codes (`?notice=claimed`,
`?error=held`): a link cannot make a page say what its author wrote. A message's blanks are
filled from stored state (the ticket shown, its intent) and settings, never from the link."""

from __future__ import annotations

from typing import Any

NOTICES = {
    "claimed": "You hold {ticket_id} for {lease_minutes} minutes.",
    "holding": "You hold this ticket.",
    "released": "Released to the queue.",
    "resolved": "Resolved: the reply is on its way.",
    "reassigned": "Reassigned: the ticket's holder is shown below.",
    "sent_back": "Intent corrected to {intent}; kept as a labelled example.",
    "nothing": "Nothing to claim.",
    "reopened": "Reopened: {ticket_id} waits for a person again. Claim it to answer.",
    "marked_right": "Marked right: the verdict counts in the unit's live estimate.",
    "marked_wrong": "Marked wrong, with the intent that was right: the verdict counts in the "
                    "unit's live estimate.",
}
ERRORS = {
    "wrong": "Unknown agent or wrong password.",
    "locked": "Too many sign-in attempts: this sign-in is locked for a while. Try again later.",
    "gone": "That ticket is not in your queue.",
    "held": "Someone else holds this ticket.",
    "resolved": "This ticket was already resolved.",
    "not_holder": "Claim the ticket first.",
    "empty_reply": "Write a reply to the customer first.",
    "no_agent": "There is no such colleague.",
    "not_in_unit": "That colleague does not serve this ticket's business unit.",
    "already_yours": "The ticket is already yours.",
    "bad_intent": "That is not an intent the classifier knows.",
    "certain": "The ticket already has that intent with certainty.",
    "bad_filter": "A search filter made no sense and was ignored.",
    "empty_reason": "Say why the automatic answer needs a person.",
    "not_automatic": "Only a ticket automation answered last can be reopened.",
    "no_review": "That review is not in your quality review.",
    "already_marked": "That answer was already marked.",
    "needs_intent": "Choose the intent that was right to mark an answer wrong.",
    "same_intent": "That is the intent the answer already had: mark it right instead.",
    "refused": "The action was refused.",
}


QUEUE_NOTICES = frozenset({"nothing"})
QUEUE_ERRORS = frozenset({"gone", "bad_filter"})
"""The codes the queue page shows (it has no ticket to fill a blank with)."""
LOGIN_ERRORS = frozenset({"wrong", "locked"})
ANSWERED_ERRORS = frozenset({"empty_reason", "not_automatic", "refused"})
"""The codes the page of an automatic answer shows (a reopening's refusals)."""
QUALITY_NOTICES = frozenset({"marked_right", "marked_wrong"})
QUALITY_ERRORS = frozenset({"no_review", "already_marked", "needs_intent", "same_intent",
                            "bad_intent", "bad_filter", "refused"})
"""The codes the quality review page shows."""


def notice(code: str | None, allowed: frozenset[str] | None = None, **blanks: Any) -> str | None:
    """The notice of a code; None for no code or one the page does not show."""
    if not code or code not in NOTICES or (allowed is not None and code not in allowed):
        return None
    return NOTICES[code].format(**blanks)


def error(code: str | None, allowed: frozenset[str] | None = None, **blanks: Any) -> str | None:
    """The error message of a code; None for no code or one the page does not show."""
    if not code or code not in ERRORS or (allowed is not None and code not in allowed):
        return None
    return ERRORS[code].format(**blanks)
