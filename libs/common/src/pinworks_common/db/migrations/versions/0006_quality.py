"""Quality: reviews of automatic answers, the scopes the live guard judges, and its events.

Revision ID: 0006
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE quality_reviews (
            id bigserial PRIMARY KEY,
            ticket_id text NOT NULL,
            attempt integer NOT NULL,
            business_unit text NOT NULL,
            intent text,
            confidence double precision,
            handler text,
            answer text,
            source text NOT NULL,
            status text NOT NULL,
            correct_intent text,
            reviewed_by text,
            reviewed_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT quality_reviews_once UNIQUE (ticket_id, attempt)
        )
    """)
    op.execute("CREATE INDEX quality_reviews_pending ON quality_reviews (status, created_at)")
    op.execute("CREATE INDEX quality_reviews_judged ON quality_reviews (reviewed_at)")
    op.execute("""
        CREATE TABLE quality_scopes (
            kind text NOT NULL,
            name text NOT NULL,
            state text NOT NULL,
            reviewed integer NOT NULL,
            wrong integer NOT NULL,
            rate double precision NOT NULL,
            lower_bound double precision NOT NULL,
            upper_bound double precision NOT NULL,
            max_wrong_rate double precision NOT NULL,
            confidence double precision NOT NULL,
            reason text,
            since timestamptz,
            changed_at timestamptz,
            evaluated_at timestamptz NOT NULL,
            PRIMARY KEY (kind, name)
        )
    """)
    op.execute("""
        CREATE TABLE quality_events (
            id bigserial PRIMARY KEY,
            kind text NOT NULL,
            name text NOT NULL,
            action text NOT NULL,
            actor text NOT NULL,
            reason text NOT NULL,
            details jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE quality_events")
    op.execute("DROP TABLE quality_scopes")
    op.execute("DROP TABLE quality_reviews")
