"""Outcome message ids that cannot be guessed: each outcome row keeps the random nonce of its
`Nats-Msg-Id` (`<ticket>:outcome:<key>:<nonce>`), so nobody can pre-publish under the id to
have JetStream drop the genuine outcome, while every re-publish of the row carries the same id.
Rows stored before keep no nonce and their old id.

Revision ID: 0009
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE outcomes ADD COLUMN msg_nonce text")


def downgrade() -> None:
    op.execute("ALTER TABLE outcomes DROP COLUMN msg_nonce")
