"""Postgres roles on a real server: each role holds exactly `roles.GRANTS`, and no service role
can rewrite, empty or unprotect the audit."""

from __future__ import annotations

import asyncpg
import pytest

from pinworks_common.db.roles import (
    APPEND_ONLY,
    GRANTS,
    OPERATOR,
    OWNER,
    REPORTS,
    ROLES,
    SERVICE_ROLES,
)
from tests.conftest import Database

pytestmark = pytest.mark.integration

TAMPERING = {
    "TRUNCATE": "TRUNCATE {table}",
    "UPDATE": "UPDATE {table} SET created_at = now()",
    "DELETE": "DELETE FROM {table}",
    "DISABLE TRIGGER": "ALTER TABLE {table} DISABLE TRIGGER USER",
    "DROP TRIGGER": "DROP TRIGGER {table}_append_only ON {table}",
    "CREATE TRIGGER": "CREATE TRIGGER forged BEFORE INSERT ON {table} "
                      "FOR EACH ROW EXECUTE FUNCTION pinworks_append_only()",
}


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _refused(url: str, statement: str) -> str:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(statement)
    except asyncpg.PostgresError as error:
        return type(error).__name__
    finally:
        await conn.close()
    return "allowed"


@pytest.mark.parametrize("role", [*SERVICE_ROLES.values(), REPORTS])
async def test_no_service_role_can_rewrite_empty_or_unprotect_the_audit(
        database: Database, role: str) -> None:
    results = {
        (table, action): await _refused(database.role_urls[role], sql.format(table=table))
        for table in sorted(APPEND_ONLY) for action, sql in TAMPERING.items()
    }
    assert {key: result for key, result in results.items()
            if result != "InsufficientPrivilegeError"} == {}


async def test_the_triggers_refuse_even_the_owner(database: Database) -> None:
    """Defence in depth: the table owner (migrations) is not allowed to rewrite the audit either
    while the triggers stand."""
    owner = database.role_urls[OWNER]
    results = {
        (table, action): await _refused(owner, TAMPERING[action].format(table=table))
        for table in sorted(APPEND_ONLY) for action in ("TRUNCATE", "UPDATE", "DELETE")
    }
    # an UPDATE or DELETE of no rows fires no row trigger; the statement is refused only with a row
    conn = await asyncpg.connect(_dsn(database.admin_url))
    try:
        empty = {table for table in APPEND_ONLY
                 if not await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})")}
    finally:
        await conn.close()
    assert {key: result for key, result in results.items()
            if result != "RaiseError" and not (key[0] in empty and key[1] != "TRUNCATE")} == {}


async def test_every_role_holds_exactly_its_grants(database: Database) -> None:
    conn = await asyncpg.connect(_dsn(database.admin_url))
    try:
        rows = await conn.fetch(
            "SELECT grantee, table_name, privilege_type FROM information_schema.role_table_grants "
            "WHERE table_schema = current_schema() AND grantee = ANY($1::text[])",
            [role for role in ROLES if role != OWNER])
        columns = await conn.fetch(
            "SELECT grantee, table_name, column_name, privilege_type "
            "FROM information_schema.column_privileges WHERE table_schema = current_schema() "
            "AND grantee = ANY($1::text[])", [role for role in ROLES if role != OWNER])
        owners = {row["tablename"]: row["tableowner"] for row in await conn.fetch(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = current_schema()")}
    finally:
        await conn.close()
    held = {(row["grantee"], row["table_name"], row["privilege_type"]) for row in rows}
    expected = {(role, table, privilege) for role, by_table in GRANTS.items()
                for table, privileges in by_table.items() for privilege in privileges
                if "(" not in privilege}
    assert held == expected
    column_limited = {(row["grantee"], row["table_name"], row["privilege_type"], row["column_name"])
                      for row in columns
                      if (row["grantee"], row["table_name"], row["privilege_type"]) not in held}
    expected_columns = {
        (role, table, privilege.split("(")[0], column.strip())
        for role, by_table in GRANTS.items() for table, privileges in by_table.items()
        for privilege in privileges if "(" in privilege
        for column in privilege.split("(")[1].rstrip(")").split(",")}
    assert column_limited == expected_columns
    assert set(owners.values()) == {OWNER}


async def test_a_service_role_cannot_read_what_it_does_not_need(database: Database) -> None:
    assert await _refused(database.service_url("verifier"), "SELECT * FROM agents") \
        == "InsufficientPrivilegeError"
    assert await _refused(database.role_urls[REPORTS], "SELECT password_hash FROM agents") \
        == "InsufficientPrivilegeError"
    assert await _refused(database.service_url("classifier"),
                          "UPDATE tickets SET body = 'forged'") == "InsufficientPrivilegeError"
    assert await _refused(
        database.role_urls[OPERATOR],
        "UPDATE quality_reviews SET status = 'right', reviewed_by = 'someone'",
    ) == "InsufficientPrivilegeError", "the operator's login cannot mark a review for an agent"


async def test_a_judgement_of_an_automatic_answer_is_given_once(database: Database) -> None:
    """`quality_reviews`: pending -> right -> wrong is allowed (a verdict, then a correction),
    as the console's role does it; undoing a wrong verdict, rewriting the answer, making a row
    pending again or deleting it is refused, even for the owner."""
    import uuid

    from pinworks_common.db.roles import CONSOLE

    ticket_id = f"verdict-{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_dsn(database.admin_url))
    try:
        first, second = [await admin.fetchval(
            "INSERT INTO quality_reviews (ticket_id, attempt, business_unit, intent, answer, "
            "source, status) VALUES ($1, $2, 'retail', 'change_pin', 'Here is how.', 'sample', "
            "'pending') RETURNING id", ticket_id, attempt) for attempt in (0, 1)]
    finally:
        await admin.close()
    console, owner = database.role_urls[CONSOLE], database.role_urls[OWNER]
    verdict = ("UPDATE quality_reviews SET status = '{status}', correct_intent = {intent}, "
               "reviewed_by = 'ana', reviewed_at = now() WHERE id = {id}")
    assert await _refused(console, verdict.format(status="right", intent="NULL", id=first)) \
        == "allowed"
    assert await _refused(console, verdict.format(
        status="wrong", intent="'card_arrival'", id=first)) == "allowed"
    refused = {
        "wrong -> right": verdict.format(status="right", intent="NULL", id=first),
        "wrong -> pending": f"UPDATE quality_reviews SET status = 'pending' WHERE id = {first}",
        "another intent": verdict.format(status="wrong", intent="'lost_card'", id=first)
        .replace("correct_intent = 'lost_card'", "intent = 'lost_card'"),
        "wrong without an intent": verdict.format(status="wrong", intent="NULL", id=second),
        "no reviewer": f"UPDATE quality_reviews SET status = 'right', reviewed_at = now() "
                       f"WHERE id = {second}",
        "answer rewritten": f"UPDATE quality_reviews SET answer = 'forged' WHERE id = {second}",
        "deleted": f"DELETE FROM quality_reviews WHERE id = {second}",
        "emptied": "TRUNCATE quality_reviews",
    }
    assert {what: await _refused(owner, sql) for what, sql in refused.items()} == {
        what: "RaiseError" for what in refused}
    assert await _refused(console, f"DELETE FROM quality_reviews WHERE id = {second}") \
        == "InsufficientPrivilegeError"
    admin = await asyncpg.connect(_dsn(database.admin_url))
    try:
        rows = await admin.fetch("SELECT status, correct_intent, answer FROM quality_reviews "
                                 "WHERE ticket_id = $1 ORDER BY attempt", ticket_id)
    finally:
        await admin.close()
    assert [tuple(r) for r in rows] == [("wrong", "card_arrival", "Here is how."),
                                        ("pending", None, "Here is how.")]


async def test_no_role_can_rename_a_stored_ticket(database: Database) -> None:
    """The classifier holds UPDATE(ticket_id) for its first-submission-wins upsert; the trigger
    keeps that from moving a stored ticket away from its audit (even for the owner)."""
    admin = await asyncpg.connect(_dsn(database.admin_url))
    try:
        await admin.execute(
            "INSERT INTO tickets (ticket_id, business_unit, body, submission_seq, trace_id, "
            "received_at) VALUES ('ROLES-RENAME-1', 'retail', 'b', 1, 't', now()) "
            "ON CONFLICT DO NOTHING")
    finally:
        await admin.close()
    renames = {
        "id": "UPDATE tickets SET ticket_id = 'ROLES-RENAMED' WHERE ticket_id = 'ROLES-RENAME-1'",
        "platform": "UPDATE tickets SET platform = 'partner' WHERE ticket_id = 'ROLES-RENAME-1'",
    }
    assert await _refused(database.service_url("classifier"), renames["id"]) == "RaiseError"
    assert {name: await _refused(database.role_urls[OWNER], sql)
            for name, sql in renames.items()} == {"id": "RaiseError", "platform": "RaiseError"}
    assert await _refused(
        database.service_url("classifier"),
        "UPDATE tickets SET ticket_id = ticket_id WHERE ticket_id = 'ROLES-RENAME-1'",
    ) == "allowed", "the upsert's no-op update still works"
