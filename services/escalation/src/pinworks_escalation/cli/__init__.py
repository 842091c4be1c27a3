"""The escalation service's `pinworks` command groups: `queue` (work the queue) and `agent`
(console agents), declared as entry points `pinworks.cli` in this package's pyproject."""
