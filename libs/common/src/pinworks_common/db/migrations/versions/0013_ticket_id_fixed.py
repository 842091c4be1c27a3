"""A ticket's id never changes once stored. The classifier's first-submission-wins upsert
(`INSERT ... ON CONFLICT (ticket_id) DO UPDATE SET ticket_id = EXCLUDED.ticket_id`, a no-op that
returns the stored row) needs UPDATE on that one column, which would also let its role rename a
stored ticket away from its audit; this trigger refuses any UPDATE that changes the id (or the
platform that owns it), for every role.

Revision ID: 0013
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE FUNCTION pinworks_ticket_id_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ticket_id IS DISTINCT FROM OLD.ticket_id
       OR NEW.platform IS DISTINCT FROM OLD.platform THEN
        RAISE EXCEPTION 'tickets: ticket % may not change its id or platform', OLD.ticket_id;
    END IF;
    RETURN NEW;
END;
$$
""")
    op.execute("CREATE TRIGGER tickets_id_fixed BEFORE UPDATE ON tickets "
               "FOR EACH ROW EXECUTE FUNCTION pinworks_ticket_id_fixed()")


def downgrade() -> None:
    op.execute("DROP TRIGGER tickets_id_fixed ON tickets")
    op.execute("DROP FUNCTION pinworks_ticket_id_fixed()")
