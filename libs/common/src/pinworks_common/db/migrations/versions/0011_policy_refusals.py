"""Policy refusals: every routing-policy value a router replica would not load, as audit.

A value in the policy KV bucket that `routing_policies` does not record (written around
`pinworks policy apply`) or that does not parse is refused by the router; each refusal is one
append-only row: which key and revision, a digest and excerpt of the value, why, and the policy
the replica kept.

Revision ID: 0011
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE policy_refusals (
            id bigserial PRIMARY KEY,
            bucket text NOT NULL,
            key text NOT NULL,
            revision bigint NOT NULL,
            kind text NOT NULL,
            reason text NOT NULL,
            version text,
            content_sha256 text NOT NULL,
            excerpt text NOT NULL,
            kept_version text,
            replica text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("CREATE INDEX policy_refusals_created ON policy_refusals (created_at)")
    op.execute("CREATE TRIGGER policy_refusals_append_only BEFORE UPDATE OR DELETE ON "
               "policy_refusals FOR EACH ROW EXECUTE FUNCTION pinworks_append_only()")
    op.execute("CREATE TRIGGER policy_refusals_no_truncate BEFORE TRUNCATE ON policy_refusals "
               "FOR EACH STATEMENT EXECUTE FUNCTION pinworks_append_only()")


def downgrade() -> None:
    op.execute("DROP TABLE policy_refusals")
