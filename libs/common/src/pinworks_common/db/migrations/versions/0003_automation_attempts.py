"""Automation attempts: an agent can send a ticket back to automation with a corrected intent;
the escalation row remembers which attempt it holds so a later attempt reopens it.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE escalations ADD COLUMN attempt integer NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE escalations DROP COLUMN attempt")
