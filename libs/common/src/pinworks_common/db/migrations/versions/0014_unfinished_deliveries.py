"""Unfinished deliveries: how often a stage began a redelivered message and never finished it.

A message that kills its process on every delivery (a segfault, an OOM kill, `os._exit`) never
raises anything a stage could count. A stage that is handed a message again without having
settled its earlier delivery itself counts, here and committed before it begins, each time it
takes that message up again; the count survives the crash it is there to see, and a message
begun and left unfinished `PINWORKS_MAX_UNFINISHED_DELIVERIES` times is dead-lettered before it
is processed again (`pinworks_common.deliveries`). A row lives only while its message is
unacknowledged: the stage deletes it once the message is acknowledged or dead-lettered.

Revision ID: 0014
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE unfinished_deliveries (
            stage text NOT NULL,
            stream_seq bigint NOT NULL,
            started integer NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (stage, stream_seq)
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE unfinished_deliveries")
