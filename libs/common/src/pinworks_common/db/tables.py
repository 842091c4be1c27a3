"""The Postgres schema as SQLAlchemy Core tables (the migrations in `migrations/` create it)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

Money = Numeric(14, 6)


def _created_at() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


tickets = Table(
    "tickets",
    metadata,
    Column("ticket_id", Text, primary_key=True),
    Column("business_unit", Text, nullable=False),
    Column("subject", Text),
    Column("body", Text, nullable=False),
    Column("customer_id", Text),
    Column("channel", Text),
    Column("metadata", JSONB, nullable=False),
    Column("submission_seq", BigInteger, nullable=False),
    Column("trace_id", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("intent", Text),
    Column("confidence", Float),
    Column("classification", JSONB),
    Column("personal_data_erased_at", DateTime(timezone=True)),
    Column("platform", Text),
)
"""`platform`: the support platform whose submission subject the ticket came on (NULL: stored
before 0010, through the bare `tickets.submitted`, and taken as the `support` platform's)."""

decisions = Table(
    "decisions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("ticket_id", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("decision_key", Text, nullable=False),
    Column("component", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("inputs", JSONB, nullable=False),
    Column("output", JSONB, nullable=False),
    Column("reason", Text, nullable=False),
    Column("cost_usd", Money, nullable=False),
    Column("latency_ms", Float),
    Column("trace_id", Text),
    _created_at(),
    UniqueConstraint("ticket_id", "stage", "decision_key", name="decisions_once"),
)

cost_ledger = Table(
    "cost_ledger",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("ticket_id", Text, nullable=False),
    Column("business_unit", Text, nullable=False),
    Column("component", Text, nullable=False),
    Column("entry_key", Text, nullable=False),
    Column("amount_usd", Money, nullable=False),
    _created_at(),
    UniqueConstraint("ticket_id", "entry_key", name="cost_ledger_once"),
)

decision_originals = Table(
    "decision_originals",
    metadata,
    Column("ticket_id", Text, primary_key=True),
    Column("stage", Text, primary_key=True),
    Column("decision_key", Text, primary_key=True),
    Column("output", JSONB, nullable=False),
    _created_at(),
)
"""The unredacted output of a decision whose output held personal data (a draft that names the
customer): what hand-offs and the queue read; erased with the ticket (`decisions` keeps the
redacted copy for ever)."""

outcomes = Table(
    "outcomes",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("ticket_id", Text, nullable=False),
    Column("outcome_key", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    _created_at(),
    Column("msg_nonce", Text),
    UniqueConstraint("ticket_id", "outcome_key", name="outcomes_once"),
)
"""`msg_nonce`: the random part of the outcome's `Nats-Msg-Id` (`subjects.outcome_message_id`),
stored with it so every re-publish carries the same id; NULL for outcomes stored before 0009."""

outcome_originals = Table(
    "outcome_originals",
    metadata,
    Column("ticket_id", Text, primary_key=True),
    Column("outcome_key", Text, primary_key=True),
    Column("payload", JSONB, nullable=False),
    _created_at(),
)
"""The unredacted payload of an outcome whose answer held personal data: what a redelivery
republishes; erased with the ticket (`outcomes` keeps the redacted copy)."""

escalations = Table(
    "escalations",
    metadata,
    Column("ticket_id", Text, primary_key=True),
    Column("business_unit", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("source_stage", Text, nullable=False),
    Column("reasons", JSONB, nullable=False),
    Column("context", JSONB, nullable=False),
    Column("trace_id", Text),
    Column("claimed_by", Text),
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("resolved_by", Text),
    Column("reply", Text),
    Column("resolved_at", DateTime(timezone=True)),
    _created_at(),
    Column("tier", Text),
    Column("sla_due_at", DateTime(timezone=True), nullable=False),
    Column("attempt", Integer, nullable=False, server_default="0"),
)

accountability = Table(
    "accountability",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("ticket_id", Text, nullable=False),
    Column("event_key", Text, nullable=False),
    Column("actor_type", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("version", Text),
    Column("details", JSONB, nullable=False),
    _created_at(),
    UniqueConstraint("ticket_id", "event_key", name="accountability_once"),
)

rejected_payloads = Table(
    "rejected_payloads",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("stream_seq", BigInteger, nullable=False, unique=True),
    Column("subject", Text, nullable=False),
    Column("ticket_id", Text),
    Column("business_unit", Text),
    Column("reasons", JSONB, nullable=False),
    Column("raw_payload", Text, nullable=False),
    Column("payload_bytes", Integer, nullable=False),
    _created_at(),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("stage", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("stream_seq", BigInteger, nullable=False),
    Column("ticket_id", Text),
    Column("deliveries", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("raw_payload", Text, nullable=False),
    _created_at(),
    UniqueConstraint("stage", "stream_seq", name="dead_letters_once"),
)

unfinished_deliveries = Table(
    "unfinished_deliveries",
    metadata,
    Column("stage", Text, primary_key=True),
    Column("stream_seq", BigInteger, primary_key=True),
    Column("started", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
"""Redelivered messages a stage began and has not finished (`pinworks_common.deliveries`):
a row per unacknowledged message, deleted once it is acknowledged or dead-lettered, or, if
that deletion is lost or the message never comes back, by the service's sweep once older than
its stream's max age."""

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("subject", Text, nullable=False),
    Column("msg_id", Text, nullable=False, unique=True),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("published_at", DateTime(timezone=True)),
    _created_at(),
)

agents = Table(
    "agents",
    metadata,
    Column("name", Text, primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("business_units", ARRAY(Text), nullable=False),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_digest", Text, primary_key=True),
    Column("agent", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("csrf_token", Text, nullable=False),
    Column("address", Text),
    _created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)
"""A console or CLI sign-in: the SHA-256 of its token (never the token), whose it is and its
CSRF token; logout, expiry and a password change end it."""

signin_throttle = Table(
    "signin_throttle",
    metadata,
    Column("key", Text, primary_key=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("window_started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lockouts", Integer, nullable=False, server_default="0"),
    Column("locked_until", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
"""Sign-in attempts per account (`agent:NAME`) and per address (`address:IP`), counted before
any password is hashed, with the lockout they earned."""

labelled_examples = Table(
    "labelled_examples",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("ticket_id", Text, nullable=False),
    Column("example_key", Text, nullable=False),
    Column("business_unit", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("predicted_intent", Text),
    Column("predicted_confidence", Float),
    Column("model_version", Text),
    Column("corrected_intent", Text, nullable=False),
    Column("labelled_by", Text, nullable=False),
    _created_at(),
    UniqueConstraint("ticket_id", "example_key", name="labelled_examples_once"),
)

routing_policies = Table(
    "routing_policies",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("version", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("applied_by", Text, nullable=False),
    _created_at(),
)

policy_refusals = Table(
    "policy_refusals",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("bucket", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("version", Text),
    Column("content_sha256", Text, nullable=False),
    Column("excerpt", Text, nullable=False),
    Column("kept_version", Text),
    Column("replica", Text, nullable=False),
    _created_at(),
)
"""Policy KV values a router replica refused (unrecorded or invalid), append-only audit."""

router_budgets = Table(
    "router_budgets",
    metadata,
    Column("business_unit", Text, primary_key=True),
    Column("handler", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("limit_amount", Money, nullable=False),
    Column("used", Money, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

quality_reviews = Table(
    "quality_reviews",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("ticket_id", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("business_unit", Text, nullable=False),
    Column("intent", Text),
    Column("confidence", Float),
    Column("handler", Text),
    Column("answer", Text),
    Column("source", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("correct_intent", Text),
    Column("reviewed_by", Text),
    Column("reviewed_at", DateTime(timezone=True)),
    _created_at(),
    UniqueConstraint("ticket_id", "attempt", name="quality_reviews_once"),
)

quality_scopes = Table(
    "quality_scopes",
    metadata,
    Column("kind", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("state", Text, nullable=False),
    Column("reviewed", Integer, nullable=False),
    Column("wrong", Integer, nullable=False),
    Column("rate", Float, nullable=False),
    Column("lower_bound", Float, nullable=False),
    Column("upper_bound", Float, nullable=False),
    Column("max_wrong_rate", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("reason", Text),
    Column("since", DateTime(timezone=True)),
    Column("changed_at", DateTime(timezone=True)),
    Column("evaluated_at", DateTime(timezone=True), nullable=False),
)

quality_events = Table(
    "quality_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("details", JSONB, nullable=False),
    _created_at(),
)
