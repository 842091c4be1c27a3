"""Tickets keep the support platform that submitted them (the one its submission subject
`tickets.submitted.<platform>` named), so another platform's submission of the same ticket id
is rejected instead of counting as a duplicate of it. Tickets stored before keep NULL, which
the classifier reads as the `support` platform's.

Revision ID: 0010
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE tickets ADD COLUMN platform text")


def downgrade() -> None:
    op.execute("ALTER TABLE tickets DROP COLUMN platform")
