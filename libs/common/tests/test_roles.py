"""The roles' grants matrix: every table is in it, and the audit is append-only in it."""

from __future__ import annotations

import re
from pathlib import Path

from pinworks_common.db import roles
from pinworks_common.db.migrate import MIGRATIONS
from pinworks_common.db.tables import metadata

CREATED = re.compile(r"CREATE TABLE\s+(?:IF NOT EXISTS\s+)?([a-z_][a-z0-9_]*)", re.IGNORECASE)


def _migrated_tables() -> set[str]:
    return {name for path in Path(MIGRATIONS, "versions").glob("*.py")
            for name in CREATED.findall(path.read_text())}


def test_every_table_has_its_grants() -> None:
    granted = {table for by_table in roles.GRANTS.values() for table in by_table}
    missing = sorted((set(metadata.tables) | _migrated_tables()) - granted)
    assert not missing, (
        f"table(s) {', '.join(missing)} have no entry in pinworks_common.db.roles.GRANTS, so no "
        "role can use them (apply_grants revokes everything not granted there). Add each under "
        "every role that reads or writes it, with the least privilege it needs, e.g. "
        f"GRANTS[SERVICE_ROLES['router']][{missing[0]!r}] = APPEND (SELECT, INSERT); add it to "
        "REPORTS' tables if reports may read it, and to APPEND_ONLY if it is audit (then add "
        "its append-only and no-truncate triggers in your migration, as 0008 does). Then "
        "replace the roles x tables table in README.md with `pinworks db roles --show`."
    )


def test_grants_name_only_real_tables_and_roles() -> None:
    assert set(roles.GRANTS) <= set(roles.ROLES) - {roles.OWNER}
    assert {t for by_table in roles.GRANTS.values() for t in by_table} <= set(metadata.tables)
    assert roles.APPEND_ONLY.issubset(metadata.tables)


def test_the_audit_is_insert_and_select_only_for_every_role() -> None:
    assert roles.violations() == []
    for table in ("decisions", "cost_ledger", "accountability", "outcomes", "routing_policies",
                  "quality_events"):
        assert table in roles.APPEND_ONLY
    assert "quality_reviews" in roles.JUDGED_ONCE
    assert not any("DELETE" in privileges for by_table in roles.GRANTS.values()
                   for table, privileges in by_table.items() if table in roles.JUDGED_ONCE)


def test_reports_only_read() -> None:
    assert {p for privileges in roles.GRANTS[roles.REPORTS].values() for p in privileges} \
        == {"SELECT"}
    assert "agents" not in roles.GRANTS[roles.REPORTS]


def test_statements_are_well_formed() -> None:
    statements = roles.grant_statements()
    assert "GRANT UPDATE(ticket_id) ON TABLE tickets TO pinworks_classifier" in statements
    assert all(s.startswith("GRANT ") for s in statements)


def test_credentials_are_kept_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "run" / "db-credentials.json"
    first = roles.load_or_create_credentials(path)
    assert set(first) == set(roles.ROLES)
    assert path.stat().st_mode & 0o777 == 0o600
    assert roles.load_or_create_credentials(path) == first
    assert len(set(first.values())) == len(first)


def test_a_role_url_keeps_the_server_and_database() -> None:
    url = roles.role_url("postgresql://postgres:secret@db:5432/pinworks", "pinworks_router", "p@ss")
    assert url == "postgresql://pinworks_router:p%40ss@db:5432/pinworks"


def test_the_readme_shows_the_grants_as_they_are() -> None:
    readme = Path(__file__).resolve().parents[3] / "README.md"
    assert roles.matrix_markdown() in readme.read_text(), (
        "README.md's roles x tables table differs from pinworks_common.db.roles.GRANTS: replace "
        "it with the output of `pinworks db roles --show`")
