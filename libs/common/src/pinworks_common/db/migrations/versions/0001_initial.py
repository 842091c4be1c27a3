"""Initial schema: tickets, the append-only audit trail, cost ledger, outcomes, escalations,
accountability, rejected payloads, dead letters and the transactional outbox.

Revision ID: 0001
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE tickets (
    ticket_id text PRIMARY KEY,
    business_unit text NOT NULL,
    subject text,
    body text NOT NULL,
    customer_id text,
    channel text,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    submission_seq bigint NOT NULL,
    trace_id text NOT NULL,
    received_at timestamptz NOT NULL,
    intent text,
    confidence double precision,
    classification jsonb
);
CREATE INDEX tickets_business_unit ON tickets (business_unit, received_at);

CREATE TABLE decisions (
    id bigserial PRIMARY KEY,
    ticket_id text NOT NULL,
    stage text NOT NULL,
    decision_key text NOT NULL,
    component text NOT NULL,
    version text NOT NULL,
    inputs jsonb NOT NULL,
    output jsonb NOT NULL,
    reason text NOT NULL,
    cost_usd numeric(14, 6) NOT NULL DEFAULT 0,
    latency_ms double precision,
    trace_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT decisions_once UNIQUE (ticket_id, stage, decision_key)
);

CREATE FUNCTION pinworks_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$;
CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION pinworks_append_only();

CREATE TABLE cost_ledger (
    id bigserial PRIMARY KEY,
    ticket_id text NOT NULL,
    business_unit text NOT NULL,
    component text NOT NULL,
    entry_key text NOT NULL,
    amount_usd numeric(14, 6) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cost_ledger_once UNIQUE (ticket_id, entry_key)
);
CREATE INDEX cost_ledger_business_unit ON cost_ledger (business_unit, created_at);
CREATE TRIGGER cost_ledger_append_only BEFORE UPDATE OR DELETE ON cost_ledger
    FOR EACH ROW EXECUTE FUNCTION pinworks_append_only();

CREATE TABLE outcomes (
    id bigserial PRIMARY KEY,
    ticket_id text NOT NULL,
    outcome_key text NOT NULL,
    status text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT outcomes_once UNIQUE (ticket_id, outcome_key)
);

CREATE TABLE escalations (
    ticket_id text PRIMARY KEY,
    business_unit text NOT NULL,
    status text NOT NULL,
    priority integer NOT NULL,
    source_stage text NOT NULL,
    reasons jsonb NOT NULL,
    context jsonb NOT NULL,
    trace_id text,
    claimed_by text,
    lease_expires_at timestamptz,
    resolved_by text,
    reply text,
    resolved_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX escalations_queue ON escalations (status, priority DESC, created_at);

CREATE TABLE accountability (
    id bigserial PRIMARY KEY,
    ticket_id text NOT NULL,
    event_key text NOT NULL,
    actor_type text NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    version text,
    details jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accountability_once UNIQUE (ticket_id, event_key)
);
CREATE TRIGGER accountability_append_only BEFORE UPDATE OR DELETE ON accountability
    FOR EACH ROW EXECUTE FUNCTION pinworks_append_only();

CREATE TABLE rejected_payloads (
    id bigserial PRIMARY KEY,
    stream_seq bigint NOT NULL UNIQUE,
    subject text NOT NULL,
    ticket_id text,
    business_unit text,
    reasons jsonb NOT NULL,
    raw_payload text NOT NULL,
    payload_bytes integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dead_letters (
    id bigserial PRIMARY KEY,
    stage text NOT NULL,
    subject text NOT NULL,
    stream_seq bigint NOT NULL,
    ticket_id text,
    deliveries integer NOT NULL,
    error text NOT NULL,
    raw_payload text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT dead_letters_once UNIQUE (stage, stream_seq)
);

CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    subject text NOT NULL,
    msg_id text NOT NULL UNIQUE,
    payload bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    published_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
"""


def _statements(script: str) -> list[str]:
    """Split on statement ends outside dollar quotes: asyncpg prepares one statement at a time."""
    statements, current, in_dollar_quote = [], [], False
    for line in script.splitlines():
        current.append(line)
        if line.count("$$") % 2:
            in_dollar_quote = not in_dollar_quote
        if line.rstrip().endswith(";") and not in_dollar_quote:
            statements.append("\n".join(current).strip())
            current = []
    return [statement for statement in statements if statement]


def upgrade() -> None:
    for statement in _statements(SCHEMA):
        op.execute(statement)


def downgrade() -> None:
    op.execute(
        "DROP TABLE outbox, dead_letters, rejected_payloads, accountability, escalations, "
        "outcomes, cost_ledger, decisions, tickets"
    )
    op.execute("DROP FUNCTION pinworks_append_only()")
