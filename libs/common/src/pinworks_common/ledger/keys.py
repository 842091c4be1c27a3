"""The natural keys of the ledger's records, each defined here only.

A key is what makes a record count once: a redelivered message produces the same keys, its
inserts conflict and nothing is stored (or charged) twice. `@n` marks automation attempt n (an
agent sent the ticket back), so a new attempt is recorded afresh.
"""

from __future__ import annotations

from pinworks_contracts.subjects import ASSIST_HANDLER, attempt_key

CLASSIFY = "classify"
"""The classifier's decision (and, as `classifier`, its cost entry)."""
CUSTOMER_STATE = "customer_state"
"""The classifier stage's customer-state reading, which router and escalation act on."""
CLASSIFIER_COST = "classifier"


def duplicate_submission(stream_seq: int) -> str:
    """A second submission of a known ticket id: recorded, never charged or answered."""
    return f"duplicate:{stream_seq}"


def route(attempt: int) -> str:
    return attempt_key("route", attempt)


def route_shadow(attempt: int) -> str:
    return attempt_key("route-shadow", attempt)


def draft(handler: str, attempt: int) -> str:
    """A specialist handler's decision, and its cost entry."""
    return attempt_key(f"draft:{handler}", attempt)


def assist(attempt: int) -> str:
    return attempt_key(ASSIST_HANDLER, attempt)


def verify(attempt: int) -> str:
    return attempt_key("verify", attempt)


def enqueue(attempt: int) -> str:
    return attempt_key("enqueue", attempt)


def event(actor: str, attempt: int = 0, action: str | None = None) -> str:
    """An accountability event: `<actor>:<action>`, or the actor alone (a specialist handler)."""
    return attempt_key(actor if action is None else f"{actor}:{action}", attempt)


def automation_outcome(attempt: int) -> str:
    """The outcome automation reached (resolved or escalated) for one attempt."""
    return attempt_key("automation", attempt)


def rejected_outcome(stream_seq: int) -> str:
    return f"rejected:{stream_seq}"


def refused(stream_seq: int) -> str:
    """A message a stage refused because the records do not account for it (see
    `pinworks_common.provenance`): audited once per stream sequence."""
    return f"refused:{stream_seq}"
