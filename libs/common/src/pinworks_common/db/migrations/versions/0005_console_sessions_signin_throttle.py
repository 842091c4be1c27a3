"""Console: server-side sessions (browser and CLI sign-ins that logout and password changes
revoke) and the sign-in throttle per account and per address.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE console_sessions (
            token_digest text PRIMARY KEY,
            agent text NOT NULL REFERENCES agents (name) ON DELETE CASCADE,
            kind text NOT NULL,
            csrf_token text NOT NULL,
            address text,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            revoked_at timestamptz
        )
    """)
    op.execute("CREATE INDEX console_sessions_agent ON console_sessions (agent)")
    op.execute("CREATE INDEX console_sessions_expires ON console_sessions (expires_at)")
    op.execute("""
        CREATE TABLE signin_throttle (
            key text PRIMARY KEY,
            attempts integer NOT NULL DEFAULT 0,
            window_started_at timestamptz NOT NULL DEFAULT now(),
            lockouts integer NOT NULL DEFAULT 0,
            locked_until timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("CREATE INDEX signin_throttle_updated ON signin_throttle (updated_at)")


def downgrade() -> None:
    op.execute("DROP TABLE signin_throttle")
    op.execute("DROP TABLE console_sessions")
