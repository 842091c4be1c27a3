"""The agents' console: agents with hashed passwords and their business units, SLA due times
and customer tier on escalations, and the labelled examples agents produce when they correct
an intent (training data for the classifier).

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATEMENTS = [
    """CREATE TABLE agents (
        name text PRIMARY KEY,
        password_hash text NOT NULL,
        business_units text[] NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT agents_name_format CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$'),
        CONSTRAINT agents_have_units CHECK (cardinality(business_units) > 0)
    )""",
    "ALTER TABLE escalations ADD COLUMN tier text",
    "ALTER TABLE escalations ADD COLUMN sla_due_at timestamptz",
    # Existing rows get the default SLA by priority (see queue.sla_for).
    """UPDATE escalations SET sla_due_at = created_at + CASE
        WHEN priority >= 90 THEN interval '1 hour'
        WHEN priority >= 70 THEN interval '4 hours'
        ELSE interval '24 hours' END""",
    "ALTER TABLE escalations ALTER COLUMN sla_due_at SET NOT NULL",
    "ALTER TABLE escalations ALTER COLUMN sla_due_at SET DEFAULT now() + interval '24 hours'",
    """CREATE INDEX escalations_units_queue
        ON escalations (business_unit, status, priority DESC, sla_due_at)""",
    """CREATE TABLE labelled_examples (
        id bigserial PRIMARY KEY,
        ticket_id text NOT NULL,
        example_key text NOT NULL,
        business_unit text NOT NULL,
        text text NOT NULL,
        predicted_intent text,
        predicted_confidence double precision,
        model_version text,
        corrected_intent text NOT NULL,
        labelled_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT labelled_examples_once UNIQUE (ticket_id, example_key)
    )""",
    "CREATE INDEX labelled_examples_intent ON labelled_examples (corrected_intent, created_at)",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE labelled_examples, agents")
    op.execute("DROP INDEX escalations_units_queue")
    op.execute("ALTER TABLE escalations DROP COLUMN sla_due_at, DROP COLUMN tier")
