"""Queue search by index: a GIN index over the trigrams of each escalation's searched text.

The queue's search (`pinworks_escalation.queue.listing`) matches its text case-insensitively
anywhere in the ticket id, subject, body and customer id (ILIKE '%text%'), which no B-tree can
serve: every search read every escalation's JSON. pg_trgm would index that, but the embedded
Postgres (`pgserver`) ships no pg_trgm, and a managed server's migrations role may not create
extensions; so two plain SQL functions do its part: `pinworks_trigrams(text)` is the set of
three-character substrings of the lower-cased text, `pinworks_escalation_trigrams(ticket_id,
context)` those of the searched fields (it is inlined, so the planner matches the query's
expression to the index's), and the index holds the latter. A search of three
characters or more asks for rows whose trigrams contain all of the search's (the index answers
that) and keeps those the ILIKE matches, so the results are exactly as before; ILIKE lower-cases
both sides with `lower()`, as these functions do, so no match is lost. Shorter searches read
every row, as before. Nothing here needs more than owning the table.

Revision ID: 0015
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION pinworks_trigrams(value text) RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
            SELECT coalesce(array_agg(substr(lowered, i, 3)), '{}')
            FROM (SELECT lower(value) AS lowered) AS v,
                 generate_series(1, length(lowered) - 2) AS i
        $$
    """)
    op.execute("""
        CREATE FUNCTION pinworks_escalation_trigrams(ticket_id text, context jsonb)
        RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT pinworks_trigrams(ticket_id
                || ' ' || coalesce(context #>> '{envelope,ticket,subject}', '')
                || ' ' || coalesce(context #>> '{envelope,ticket,body}', '')
                || ' ' || coalesce(context #>> '{envelope,ticket,customer_id}', ''))
        $$
    """)
    # A small pending list: GIN keeps rows written since the last flush unsorted, every search
    # reads them all, and the planner, counting them, turned away from the index on a queue of
    # a few thousand written one by one (test_queue_search) with the default 4 MB. Writing
    # each row straight into the index (fastupdate off) cost 1.2-3.3 ms per escalation on
    # the 2-core machine; 256 kB keeps both small (bench_search.py).
    op.execute("CREATE INDEX escalations_search_trigrams ON escalations "
               "USING gin (pinworks_escalation_trigrams(ticket_id, context)) "
               "WITH (gin_pending_list_limit = 256)")


def downgrade() -> None:
    op.execute("DROP INDEX escalations_search_trigrams")
    op.execute("DROP FUNCTION pinworks_escalation_trigrams(text, jsonb)")
    op.execute("DROP FUNCTION pinworks_trigrams(text)")
