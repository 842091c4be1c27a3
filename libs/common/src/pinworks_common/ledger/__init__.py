"""One ledger for every stage: typed records in, idempotent rows and publications out.

A stage's `apply` returns `Entries` (decisions, cost entries, accountability, outcomes,
hand-offs); `Ledger.record` stores each once and builds the publications from what is stored.
See `book` for the rule, `records` for the records, `keys` for their keys.
"""

from pinworks_common.ledger import keys
from pinworks_common.ledger.book import Books, Ledger, Store
from pinworks_common.ledger.records import (
    AccountabilityEntry,
    CostEntry,
    Decision,
    DecisionRef,
    Entries,
    HandOff,
    OutcomeEntry,
    Publication,
    Recorded,
    automation_outcome,
    escalation_publication,
    handoff_publication,
    outcome_publication,
)

__all__ = [
    "AccountabilityEntry", "Books", "CostEntry", "Decision", "DecisionRef", "Entries", "HandOff",
    "Ledger", "OutcomeEntry", "Publication", "Recorded", "Store", "automation_outcome",
    "escalation_publication",
    "handoff_publication", "keys", "outcome_publication",
]
