"""Audit protection: every audit table refuses UPDATE, DELETE and TRUNCATE (outcomes, policy
history, rejected payloads and dead letters join decisions, the cost ledger and accountability).

Rejected payloads and dead letters written before the ledger redacted them (0007) are redacted
first, with the ticket's known names, as erasure used to: once append-only, nothing may change
them, and erasure leaves them alone.

Roles and grants are not migrated here: `pinworks_common.db.roles.apply_grants` runs after every
upgrade (see `env.py`) and makes the database match `roles.GRANTS`, with every table owned by
`pinworks_migrations` so no service role can TRUNCATE, ALTER or disable a trigger.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NEWLY_APPEND_ONLY = ("outcomes", "routing_policies", "rejected_payloads", "dead_letters")
AUDIT = ("decisions", "cost_ledger", "accountability", *NEWLY_APPEND_ONLY)


def _redact_legacy_rows() -> None:
    from pinworks_common.personal_data import known_names, redact

    conn = op.get_bind()
    for table in ("rejected_payloads", "dead_letters"):
        rows = conn.execute(sa.text(
            f"SELECT r.id, r.raw_payload, t.metadata FROM {table} r "
            "LEFT JOIN tickets t ON t.ticket_id = r.ticket_id")).all()
        for row_id, raw, metadata in rows:
            redacted = redact(raw, known_names=known_names(metadata))[0]
            if redacted != raw:
                conn.execute(sa.text(f"UPDATE {table} SET raw_payload = :p WHERE id = :i"),
                             {"p": redacted, "i": row_id})


def upgrade() -> None:
    _redact_legacy_rows()
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
