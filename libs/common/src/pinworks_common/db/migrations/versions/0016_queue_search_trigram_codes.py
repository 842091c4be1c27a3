"""Queue search index, cheaper to write: int4 byte-trigram codes, made without a row per character.

Migration 0015's index cost Postgres 0.33-0.40 CPU-ms per escalation written, on top of the
0.02-0.04 the row costs without it (`bench_search_writes.py`: the bench's tickets, batches of 32
as the ledger writes them). About half was computing the keys: `pinworks_trigrams` was a SQL
function whose `generate_series` made one executor row and one `substr` per character (0.19-0.22
ms for a bench ticket's ~160 characters); the rest was GIN's, whose every key was text, so its
per-row sort, its pending-list accumulator and its entry tree compared ~130 distinct keys a row
through `bttextcmp`.

Here the same two functions (same names and arguments, so the listing's SQL is unchanged) return
`int[]`: each code is three consecutive bytes of the lower-cased text's UTF-8, read as a 24-bit
number, exactly (no hashing). The bytes are hex-encoded, the three byte offsets' runs of whole
3-byte groups are joined and cut by one `regexp_replace` into `x<6 hex digits>` items, which
`bit(24)` then `int4` read (int4's own input reads hex only from Postgres 16 on): all C, in a
PL/pgSQL body (cheaper to call per row than a non-inlinable SQL function). GIN drops a row's
repeated keys itself, so they are not made distinct here.

Search results stay exactly as before: if the lower-cased search is a substring of a lower-cased
field, its bytes are a substring of the lower-cased searched text's bytes, so its byte trigrams
are among the row's; the index still only narrows the rows and the ILIKE decides.
`pinworks_escalation_trigrams` stays an inlinable SQL function, so the planner matches the
query's expression to the index's.

The keys now cost 0.05-0.06 ms a row and GIN 0.08-0.13: the index adds 0.12-0.19 CPU-ms per
row (0015: 0.33-0.40). The pending list stays at 0015's 256 kB: 512 kB saved at most 0.03 ms a row
but doubled the searches' time (every search reads the whole list), and at 1 MB the planner
left the index for a few fill levels of the list on `test_queue_search`'s queue.

Revision ID: 0016
"""

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _drop()
    op.execute(r"""
        CREATE FUNCTION pinworks_trigrams(value text) RETURNS int[]
        LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
        DECLARE
            hex text := encode(convert_to(lower(value), 'UTF8'), 'hex');
            n int := length(hex);
        BEGIN
            RETURN string_to_array(rtrim(regexp_replace(
                substr(hex, 1, n / 6 * 6)
                    || substr(hex, 3, greatest(n - 2, 0) / 6 * 6)
                    || substr(hex, 5, greatest(n - 4, 0) / 6 * 6),
                '......', 'x\&,', 'g'), ','), ',')::bit(24)[]::int[];
        END
        $$
    """)
    op.execute("""
        CREATE FUNCTION pinworks_escalation_trigrams(ticket_id text, context jsonb)
        RETURNS int[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT pinworks_trigrams(ticket_id
                || ' ' || coalesce(context #>> '{envelope,ticket,subject}', '')
                || ' ' || coalesce(context #>> '{envelope,ticket,body}', '')
                || ' ' || coalesce(context #>> '{envelope,ticket,customer_id}', ''))
        $$
    """)
    op.execute("CREATE INDEX escalations_search_trigrams ON escalations "
               "USING gin (pinworks_escalation_trigrams(ticket_id, context)) "
               "WITH (gin_pending_list_limit = 256)")


def downgrade() -> None:
    """Back to 0015's text trigrams: its own upgrade recreates them."""
    _drop()
    _revision_0015().upgrade()


def _drop() -> None:
    op.execute("DROP INDEX escalations_search_trigrams")
    op.execute("DROP FUNCTION pinworks_escalation_trigrams(text, jsonb)")
    op.execute("DROP FUNCTION pinworks_trigrams(text)")


def _revision_0015() -> ModuleType:
    path = Path(__file__).with_name("0015_queue_search_index.py")
    spec = importlib.util.spec_from_file_location("pinworks_migration_0015", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
