"""Audit protection: every audit table refuses UPDATE, DELETE and TRUNCATE (outcomes, policy
history, rejected payloads and dead letters join decisions, the cost ledger and accountability).

Roles and grants are not migrated here: `pinworks_common.db.roles.apply_grants` runs after every
upgrade (see `env.py`) and makes the database match `roles.GRANTS`, with every table owned by
`pinworks_migrations` so no service role can TRUNCATE, ALTER or disable a trigger.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NEWLY_APPEND_ONLY = ("outcomes", "routing_policies", "rejected_payloads", "dead_letters")
AUDIT = ("decisions", "cost_ledger", "accountability", *NEWLY_APPEND_ONLY)


def upgrade() -> None:
    for table in NEWLY_APPEND_ONLY:
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION pinworks_append_only()")
    for table in AUDIT:
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION pinworks_append_only()")


def downgrade() -> None:
    for table in AUDIT:
        op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
    for table in NEWLY_APPEND_ONLY:
        op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
