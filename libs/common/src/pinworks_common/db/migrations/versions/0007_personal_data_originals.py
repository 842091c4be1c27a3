"""Personal data: the audit tables keep redacted text; the unredacted output of a decision and
payload of an outcome, where they held personal data, live in erasable tables beside them.
`tickets.personal_data_erased_at` says when a ticket's personal data was erased (by
`pinworks erase` or the retention task).

Revision ID: 0007
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE decision_originals (
            ticket_id text NOT NULL,
            stage text NOT NULL,
            decision_key text NOT NULL,
            output jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (ticket_id, stage, decision_key)
        )
    """)
    op.execute("""
        CREATE TABLE outcome_originals (
            ticket_id text NOT NULL,
            outcome_key text NOT NULL,
            payload jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (ticket_id, outcome_key)
        )
    """)
    op.execute("ALTER TABLE tickets ADD COLUMN personal_data_erased_at timestamptz")
    op.execute("CREATE INDEX tickets_customer ON tickets (customer_id)")


def downgrade() -> None:
    op.execute("DROP INDEX tickets_customer")
    op.execute("ALTER TABLE tickets DROP COLUMN personal_data_erased_at")
    op.execute("DROP TABLE outcome_originals")
    op.execute("DROP TABLE decision_originals")
