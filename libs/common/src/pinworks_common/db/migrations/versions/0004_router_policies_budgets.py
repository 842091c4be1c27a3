"""Router: the history of applied routing policies, and budget counters shared by router replicas.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE routing_policies (
            id bigserial PRIMARY KEY,
            version text NOT NULL,
            content text NOT NULL,
            source text NOT NULL,
            applied_by text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("CREATE INDEX routing_policies_version ON routing_policies (version)")
    op.execute("""
        CREATE TABLE router_budgets (
            business_unit text NOT NULL,
            handler text NOT NULL,
            kind text NOT NULL,
            period_start date NOT NULL,
            limit_amount numeric(14, 6) NOT NULL,
            used numeric(14, 6) NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (business_unit, handler, kind, period_start)
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE router_budgets")
    op.execute("DROP TABLE routing_policies")
