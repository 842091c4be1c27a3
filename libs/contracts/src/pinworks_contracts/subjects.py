"""Every NATS subject, stream and durable consumer name, defined once.

Services import these names; no service spells a subject as a string literal.
"""

from __future__ import annotations

import re
from enum import StrEnum

# Public contract: support platform `<platform>` publishes its tickets on
# `tickets.submitted.<platform>`, and NATS lets only that platform's identity publish there, so
# the subject (never the payload) says which platform submitted a ticket.
SUBMITTED_PREFIX = "tickets.submitted"
SUBMITTED_WILDCARD = f"{SUBMITTED_PREFIX}.*"
PLATFORM_PATTERN = r"[A-Za-z0-9_-]{1,64}"
"""A support platform's name: one subject token (no `.`, `*` or `>`), as its identity is named."""
# Public contract: one subject per outcome status and support platform,
# `tickets.outcome.<status>.<platform>`; a platform's consumer reads only its own.
OUTCOME_PREFIX = "tickets.outcome"
OUTCOME_WILDCARD = f"{OUTCOME_PREFIX}.>"

# Internal pipeline subjects.
CLASSIFIED = "pinworks.work.classified"
ROUTED_PREFIX = "pinworks.work.routed"
DRAFTED = "pinworks.work.drafted"
ESCALATION_REQUESTED = "pinworks.work.escalate"
ASSIST_REQUESTED = "pinworks.work.assist"
"""An escalated ticket for which the specialists prepare the agent's suggested reply."""
ASSIST_HANDLER = "assist"
"""Names the specialists' assist consumer (`specialist-assist`) and its decision rows."""
DEAD_LETTER_PREFIX = "pinworks.deadletter"
QUALITY_SAMPLE = "quality-sample"
"""Names the escalation service's consumer of `tickets.outcome.resolved` that draws automatic
answers for the agents' quality review, and its decision rows."""

# JetStream streams.
TICKETS_STREAM = "PINWORKS_TICKETS"
WORK_STREAM = "PINWORKS_WORK"
OUTCOMES_STREAM = "PINWORKS_OUTCOMES"
DEAD_LETTER_STREAM = "PINWORKS_DEADLETTER"
OUTCOME_WATCH_STREAM = "PINWORKS_OUTCOME_WATCH"
"""Recent outcomes, sourced from `OUTCOMES_STREAM`, on which no durable consumer lives: support
platforms create their short-lived watchers here (`pinworks submit`, `replay`), so the grant that
lets them cannot reach a durable consumer of the outcomes stream itself."""

STREAM_SUBJECTS: dict[str, list[str]] = {
    TICKETS_STREAM: [SUBMITTED_WILDCARD],
    WORK_STREAM: ["pinworks.work.>"],
    OUTCOMES_STREAM: [OUTCOME_WILDCARD],
    DEAD_LETTER_STREAM: [f"{DEAD_LETTER_PREFIX}.>"],
}


class OutcomeStatus(StrEnum):
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    REJECTED = "rejected"


class Stage(StrEnum):
    """A pipeline stage: names the durable consumer, the audit rows and the dead-letter subject."""

    CLASSIFIER = "classifier"
    ROUTER = "router"
    SPECIALIST = "specialist"
    VERIFIER = "verifier"
    ESCALATION = "escalation"
    AGENT = "agent"


def submission_subject(platform: str) -> str:
    """Where support platform `platform` (and only it) publishes its tickets."""
    if not re.fullmatch(PLATFORM_PATTERN, platform):
        raise ValueError(f"not a support platform name: {platform!r} (letters, digits, _ and -)")
    return f"{SUBMITTED_PREFIX}.{platform}"


def submitting_platform(subject: str) -> str | None:
    """The platform a submission subject names, or None for any other subject."""
    prefix, _, platform = subject.rpartition(".")
    if prefix != SUBMITTED_PREFIX or not re.fullmatch(PLATFORM_PATTERN, platform):
        return None
    return platform


def outcome_subject(status: OutcomeStatus | str, platform: str) -> str:
    """Where an outcome for support platform `platform`'s ticket is published."""
    return f"{OUTCOME_PREFIX}.{OutcomeStatus(status).value}.{platform}"


def outcome_status_subjects(status: OutcomeStatus | str) -> str:
    """Every platform's outcomes of one status (what a stage may publish, the quality sample
    reads)."""
    return f"{OUTCOME_PREFIX}.{OutcomeStatus(status).value}.*"


def platform_outcome_subjects(platform: str) -> str:
    """Every outcome for support platform `platform` (its consumer's filter)."""
    return f"{OUTCOME_PREFIX}.*.{platform}"


def routed_subject(handler: str) -> str:
    return f"{ROUTED_PREFIX}.{handler}"


def dead_letter_subject(stage: str) -> str:
    return f"{DEAD_LETTER_PREFIX}.{stage}"


def specialist_consumer(handler: str) -> str:
    return f"specialist-{handler}"


def attempt_key(base: str, attempt: int) -> str:
    """A record or message key for one automation attempt: `base` for the first, `base@n` after
    an agent sent the ticket back, so a new attempt is recorded and published afresh."""
    return base if attempt == 0 else f"{base}@{attempt}"


# `Nats-Msg-Id` formats, each defined here only. JetStream drops a publish whose id it saw within
# the duplicate window, so a redelivered message's re-publish never reaches the next stage twice:
# every id is derived from the ticket and the step (and the automation attempt), never from time;
# a public outcome's also carries the random nonce stored with it (`outcome_message_id`).

def message_id(ticket_id: str, step: str) -> str:
    """The `Nats-Msg-Id` of a stage's publish for one ticket: `<ticket>:<step>`."""
    return f"{ticket_id}:{step}"


def submission_message_id(ticket_id: str) -> str:
    return message_id(ticket_id, "submitted")


def classified_message_id(ticket_id: str) -> str:
    return message_id(ticket_id, "classified")


def agent_return_message_id(ticket_id: str, attempt: int) -> str:
    """A ticket an agent sent back to automation, re-entering the router as attempt `attempt`."""
    return message_id(ticket_id, f"classified:agent:{attempt}")


def routed_message_id(ticket_id: str, attempt: int) -> str:
    return message_id(ticket_id, attempt_key("routed", attempt))


def hop_message_id(ticket_id: str, handler: str, attempt: int) -> str:
    """A fallback hop to `handler`: `<ticket>:routed:<handler>` (`@n` for attempt n)."""
    return message_id(ticket_id, attempt_key(f"routed:{handler}", attempt))


def drafted_message_id(ticket_id: str, attempt: int) -> str:
    return message_id(ticket_id, attempt_key("drafted", attempt))


def escalation_message_id(ticket_id: str, attempt: int) -> str:
    """One escalation request per ticket and attempt, whichever stage asks."""
    return message_id(ticket_id, attempt_key("escalate", attempt))


def assist_message_id(ticket_id: str, attempt: int) -> str:
    return message_id(ticket_id, attempt_key("assist", attempt))


def outcome_message_id(ticket_id: str, outcome_key: str, nonce: str | None) -> str:
    """A public outcome: `<ticket>:outcome:<key>:<nonce>`, keyed like its `outcomes` row plus the
    random nonce stored with that row. Nobody can guess the id to pre-publish under it (which
    would make JetStream drop the genuine outcome as a duplicate), and a re-publish after a
    redelivery reads the same nonce back, so it is still dropped. A row stored before outcomes
    had a nonce keeps its old id, `<ticket>:outcome:<key>`."""
    base = message_id(ticket_id, f"outcome:{outcome_key}")
    return base if nonce is None else f"{base}:{nonce}"


def dead_letter_message_id(stage: str, stream_seq: int) -> str:
    """A dead letter names the stage and the stream sequence it gave up on."""
    return f"deadletter:{stage}:{stream_seq}"


ROUTER_POLICY_BUCKET = "router-policy"
"""NATS key-value bucket through which `pinworks policy apply` hands the live policy to routers."""
ROUTER_POLICY_KEY = "current"
"""Key of the live routing policy (YAML text) in `ROUTER_POLICY_BUCKET`."""
ROUTER_SHADOW_KEY = "shadow"
"""Key of the shadow (candidate) policy in `ROUTER_POLICY_BUCKET`: routers record its decisions
and disagreements beside the live ones without acting on them; deleting the key stops it."""
