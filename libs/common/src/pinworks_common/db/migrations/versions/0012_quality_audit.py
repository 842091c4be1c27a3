"""Quality audit: the guard's and operators' tightenings and loosenings (`quality_events`) are
append-only like the rest of the audit, and a judgement of an automatic answer
(`quality_reviews`) is kept once made.

`quality_events` refuses UPDATE, DELETE and TRUNCATE (the `pinworks_append_only` triggers of
0001/0008). A `quality_reviews` row is added pending (sampled) or judged (a correction) and may
then change only by a verdict: pending -> right or wrong, or right -> wrong (an agent's later
correction of an answer a review had called right); the verdict's columns only, naming who and
when. Everything else (a wrong verdict undone, a judged row made pending again, the answer or
its intent rewritten, a row deleted, the table emptied) is refused, even for the owner.

Revision ID: 0012
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TRIGGER quality_events_append_only BEFORE UPDATE OR DELETE ON "
               "quality_events FOR EACH ROW EXECUTE FUNCTION pinworks_append_only()")
    op.execute("CREATE TRIGGER quality_events_no_truncate BEFORE TRUNCATE ON quality_events "
               "FOR EACH STATEMENT EXECUTE FUNCTION pinworks_append_only()")
    op.execute("""
        CREATE FUNCTION pinworks_verdict_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE'
               AND ((OLD.status = 'pending' AND NEW.status IN ('right', 'wrong'))
                    OR (OLD.status = 'right' AND NEW.status = 'wrong'))
               AND NEW.reviewed_by IS NOT NULL AND NEW.reviewed_at IS NOT NULL
               AND (NEW.status = 'wrong') = (NEW.correct_intent IS NOT NULL)
               AND (NEW.id, NEW.ticket_id, NEW.attempt, NEW.business_unit, NEW.intent,
                    NEW.confidence, NEW.handler, NEW.answer, NEW.source, NEW.created_at)
                   IS NOT DISTINCT FROM
                   (OLD.id, OLD.ticket_id, OLD.attempt, OLD.business_unit, OLD.intent,
                    OLD.confidence, OLD.handler, OLD.answer, OLD.source, OLD.created_at)
            THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION '% keeps every judgement: % refused (a verdict is given once: '
                'pending to right or wrong, right to wrong)', TG_TABLE_NAME, TG_OP;
        END;
        $$
    """)
    op.execute("CREATE TRIGGER quality_reviews_verdict_once BEFORE UPDATE OR DELETE ON "
               "quality_reviews FOR EACH ROW EXECUTE FUNCTION pinworks_verdict_once()")
    op.execute("CREATE TRIGGER quality_reviews_no_truncate BEFORE TRUNCATE ON quality_reviews "
               "FOR EACH STATEMENT EXECUTE FUNCTION pinworks_append_only()")


def downgrade() -> None:
    op.execute("DROP TRIGGER quality_reviews_no_truncate ON quality_reviews")
    op.execute("DROP TRIGGER quality_reviews_verdict_once ON quality_reviews")
    op.execute("DROP FUNCTION pinworks_verdict_once()")
    op.execute("DROP TRIGGER quality_events_no_truncate ON quality_events")
    op.execute("DROP TRIGGER quality_events_append_only ON quality_events")
