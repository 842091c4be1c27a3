"""The human escalation queue in Postgres (a table of tickets waiting for a person, not a
message queue), worked by agents in the console and the CLI.

Order: priority (customer state and tier), then the SLA due time, then age. Every agent action
(claim, release, reassign, resolve, send back) is recorded in `accountability`.

- `items`: a queued ticket, its statuses and the queue's refusals;
- `priority`: priority and SLA of a ticket (the escalation stage applies them);
- `listing`: search, filters, orders and pages;
- `actions`: claim, release, reassign, resolve; `corrections`: send back with a new intent;
- `reopen`: an automatically answered ticket back to a person;
- `handoff`: what those actions publish through the outbox (router hand-off, human outcome);
- `context`, `reports`: what an agent reads beside a ticket, and the suggestions' usefulness;
- `agent_store`: the agents and the business units they serve.
"""

from pinworks_escalation.queue.actions import DEFAULT_LEASE, claim, reassign, release, resolve
from pinworks_escalation.queue.agent_store import (
    AGENT_NAME_PATTERN,
    Agent,
    get_agent,
    list_agents,
    save_agent,
)
from pinworks_escalation.queue.context import customer_history, ticket_context
from pinworks_escalation.queue.corrections import send_back
from pinworks_escalation.queue.handoff import HUMAN_OUTCOME_KEY
from pinworks_escalation.queue.items import (
    CLAIMED,
    OPEN,
    RESOLVED,
    RETURNED,
    NotQueued,
    QueueError,
    QueueItem,
)
from pinworks_escalation.queue.listing import (
    QUEUE_ORDER,
    SORTS,
    STATUS_FILTERS,
    QueueQuery,
    count_queue,
    get_item,
    list_queue,
    pending_count,
)
from pinworks_escalation.queue.priority import (
    PREMIUM_TIERS,
    Priority,
    assess_priority,
    priority_for,
    sla_for,
    tier_of,
)
from pinworks_escalation.queue.reopen import last_automatic_answer, reopen
from pinworks_escalation.queue.reports import assist_usefulness

__all__ = [
    "AGENT_NAME_PATTERN", "CLAIMED", "DEFAULT_LEASE", "HUMAN_OUTCOME_KEY", "OPEN",
    "PREMIUM_TIERS", "QUEUE_ORDER", "RESOLVED", "RETURNED", "SORTS", "STATUS_FILTERS", "Agent",
    "NotQueued", "Priority", "QueueError", "QueueItem", "QueueQuery", "assess_priority",
    "assist_usefulness", "claim", "count_queue", "customer_history", "get_agent", "get_item",
    "last_automatic_answer", "list_agents", "list_queue", "pending_count", "priority_for",
    "reassign", "release", "reopen", "resolve", "save_agent", "send_back", "sla_for", "tier_of",
    "ticket_context",
]
