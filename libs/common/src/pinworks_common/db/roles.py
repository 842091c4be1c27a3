"""Postgres roles and what each may do to each table: the one place privileges are defined.

Every table belongs to `pinworks_migrations`, so no other role can TRUNCATE it, ALTER it or
disable its triggers (those need ownership). Every other role gets exactly the privileges in
`GRANTS` and nothing else. The audit tables (`APPEND_ONLY`) are INSERT and SELECT only for
everyone; their triggers refuse UPDATE, DELETE and TRUNCATE even for the owner.

`apply_grants` makes the database match this module: it creates a missing role (without login;
a deployment gives logins and passwords, `pinworks db roles --passwords` or CloudNativePG
managed roles), hands the tables to the owner and grants exactly `GRANTS`. `pinworks db
upgrade` runs it after every migration; a new table must be added to `GRANTS` (a unit test
fails otherwise).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

OWNER = "pinworks_migrations"
"""Owns every table, sequence and function; runs the migrations."""

SERVICE_ROLES: dict[str, str] = {
    service: f"pinworks_{service}"
    for service in ("classifier", "router", "specialists", "verifier", "escalation")
}
"""The role each pipeline service connects as."""

CONSOLE = "pinworks_console"
"""The agents' console (in the escalation service, `ESCALATION_CONSOLE_DATABASE_URL`)."""
OPERATOR = "pinworks_operator"
"""People at the `pinworks` CLI: policy, agents, the queue, reports, bench."""
REPORTS = "pinworks_reports"
"""Read-only: reports and dashboards."""

ROLES: tuple[str, ...] = (OWNER, *SERVICE_ROLES.values(), CONSOLE, OPERATOR, REPORTS)

APPEND_ONLY: frozenset[str] = frozenset({
    "decisions", "cost_ledger", "accountability", "outcomes", "routing_policies",
    "rejected_payloads", "dead_letters", "policy_refusals", "quality_events",
})
"""The audit: rows are only ever added. No role is granted UPDATE, DELETE or TRUNCATE on them,
and a trigger refuses those statements (migrations 0008, 0011, 0012)."""

JUDGED_ONCE: frozenset[str] = frozenset({"quality_reviews"})
"""Judgements of automatic answers: rows are added, and a row changes only by its verdict
(pending -> right or wrong, right -> wrong; `_QUALITY_VERDICT`'s columns). No role may DELETE,
and a trigger refuses any other UPDATE, every DELETE and TRUNCATE even for the owner
(migration 0013)."""

READ = ("SELECT",)
APPEND = ("SELECT", "INSERT")

_LEDGER: dict[str, tuple[str, ...]] = {
    "decisions": APPEND, "cost_ledger": APPEND, "accountability": APPEND, "outcomes": APPEND,
    "dead_letters": APPEND, "tickets": READ,
    "decision_originals": APPEND, "outcome_originals": APPEND,
}
"""What every stage's ledger does: record decisions, costs, actions, outcomes and dead letters
(inserts return their keys, so SELECT too) and the unredacted original of an output or outcome
that held personal data, read stored decisions (with their originals, for hand-offs), outcomes,
cost totals and when a ticket was received."""

_STAGE: dict[str, tuple[str, ...]] = {
    **_LEDGER,
    # INSERT ... ON CONFLICT DO UPDATE counts a redelivery begun; DELETE once it is settled, or
    # by the sweep once older than its stream's max age
    "unfinished_deliveries": ("SELECT", "INSERT", "UPDATE(started, updated_at)", "DELETE"),
}
"""What every pipeline service's stage runner does: its ledger, and counting the redelivered
messages it began and did not finish (`pinworks_common.deliveries`)."""

_ERASE: dict[str, tuple[str, ...]] = {
    # SELECT ... FOR UPDATE, then the redacted text and when
    "tickets": ("SELECT", "UPDATE(subject, body, metadata, personal_data_erased_at)"),
    "decision_originals": ("SELECT", "INSERT", "DELETE"),
    "outcome_originals": ("SELECT", "INSERT", "DELETE"),
    "escalations": ("SELECT", "UPDATE(context, reply)"),
    "labelled_examples": ("SELECT", "UPDATE(text)"),
    # the ticket's published messages
    "outbox": ("SELECT", "DELETE"),
}
"""What erasing a ticket's personal data needs (`pinworks erase` as the operator, the retention
task as escalation): redact the working copies, delete the originals and published outbox rows.
Nothing on the audit: it never held the data (`rejected_payloads` and `dead_letters` are written
redacted, and 0008 redacted the rows from before), and the erasure event is an INSERT."""

_QUALITY_VERDICT = "UPDATE(status, correct_intent, reviewed_by, reviewed_at)"
"""An agent's verdict on an automatic answer (`mark`; a send-back's or resolution's
`record_correction`)."""

_QUEUE_WORK: dict[str, tuple[str, ...]] = {
    **_LEDGER,
    # a reopened ticket (`reopen`) that never waited for a person gets its first queue row
    "escalations": ("SELECT", "INSERT", "UPDATE"),
    # INSERT ... ON CONFLICT (msg_id) DO NOTHING: inferring the arbiter index reads msg_id
    "outbox": ("SELECT", "INSERT"),
    "labelled_examples": APPEND,
    "agents": READ,
    "rejected_payloads": READ,
    # a send-back or resolution with another intent records that the automatic answer was wrong
    "quality_reviews": ("SELECT", "INSERT", _QUALITY_VERDICT),
}
"""Agents' work on the queue (console and CLI): claim, release, resolve, send back, correct an
intent, reopen an automatically answered ticket; each records accountability, costs and
outcomes and stages its publication in the outbox."""

GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    SERVICE_ROLES["classifier"]: {
        **_STAGE,
        # first submission wins: INSERT ... ON CONFLICT (ticket_id) DO UPDATE SET ticket_id
        # (a no-op that returns the stored row) needs UPDATE on that one column; a trigger
        # (migration 0013) refuses any UPDATE that would change it
        "tickets": ("SELECT", "INSERT", "UPDATE(ticket_id)"),
        "rejected_payloads": APPEND,
    },
    SERVICE_ROLES["router"]: {
        **_STAGE,
        "router_budgets": ("SELECT", "INSERT", "UPDATE(limit_amount, used, updated_at)"),
        # a policy value from the KV bucket loads only if recorded; a refusal is audited
        "routing_policies": READ,
        "policy_refusals": APPEND,
        # the quality guard: judged reviews in, each scope's estimate and tightenings out
        "quality_reviews": READ,
        "quality_scopes": ("SELECT", "INSERT", "UPDATE(reviewed, wrong, rate, lower_bound, "
                           "upper_bound, max_wrong_rate, confidence, evaluated_at, state, reason, "
                           "changed_at)"),
        "quality_events": APPEND,
    },
    SERVICE_ROLES["specialists"]: {
        **_STAGE,
        # agent assist builds its material from the queued ticket, not the request (provenance)
        "escalations": READ,
    },
    SERVICE_ROLES["verifier"]: {
        **_STAGE,
        # a draft for a person is checked against the stored hand-off (provenance)
        "escalations": READ,
    },
    SERVICE_ROLES["escalation"]: {
        # the queue consumer (a later attempt supersedes a queued row), the outbox relay (reads
        # pending rows FOR UPDATE, marks them sent), the quality sample (queues stored automatic
        # answers for review) and the retention task (erases old tickets, `_ERASE`); the
        # console has a role of its own
        **_STAGE,
        **_ERASE,
        "escalations": ("SELECT", "INSERT", "UPDATE"),
        "outbox": ("SELECT", "UPDATE(published_at)", "DELETE"),
        "quality_reviews": APPEND,
    },
    CONSOLE: {
        **_QUEUE_WORK,
        # sign-in: sessions kept as token digests (logout revokes), the shared throttle
        "console_sessions": ("SELECT", "INSERT", "UPDATE(revoked_at)"),
        "signin_throttle": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    },
    OPERATOR: {
        **_QUEUE_WORK,
        **_ERASE,
        "agents": ("SELECT", "INSERT", "UPDATE"),
        # a new password (`pinworks agent add`) ends the agent's sessions
        "console_sessions": ("SELECT", "UPDATE(revoked_at)"),
        "routing_policies": APPEND,
        "policy_refusals": READ,
        "router_budgets": ("SELECT", "DELETE"),
        "outbox": ("SELECT", "INSERT", "DELETE"),
        # `pinworks bench` takes its run's escalations, labels and budget rows out afterwards
        "escalations": ("SELECT", "INSERT", "UPDATE", "DELETE"),
        "labelled_examples": ("SELECT", "INSERT", "UPDATE(text)", "DELETE"),
        # `pinworks quality loosen`, `pinworks report quality` (agents mark reviews through the
        # console, as the console role)
        "quality_scopes": ("SELECT", "UPDATE(state, since, changed_at, reason, reviewed, wrong, "
                           "rate, lower_bound, upper_bound)"),
        "quality_events": APPEND,
        # verdicts are agents' own: they mark through the console (as themselves), never as
        # the operator's login
        "quality_reviews": READ,
    },
    REPORTS: {
        table: READ for table in (
            "tickets", "decisions", "cost_ledger", "outcomes", "escalations", "accountability",
            "rejected_payloads", "dead_letters", "labelled_examples", "routing_policies",
            "policy_refusals", "router_budgets", "quality_reviews", "quality_scopes", "quality_events",
            "unfinished_deliveries",
        )
    },
}
"""role -> table -> privileges. A table a role does not list is closed to it. `UPDATE(a, b)`
grants UPDATE on those columns only. Reports read everything but `agents` (password hashes),
`outbox` (undelivered messages), the sign-in tables and the unredacted originals."""

_PRIVILEGE = re.compile(r"^(SELECT|INSERT|UPDATE|DELETE)(\(([a-z_]+(, [a-z_]+)*)\))?$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def _checked(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def grant_statements(tables: Any = None) -> list[str]:
    """The GRANT statements for `GRANTS` (on `tables` only, when given)."""
    statements = []
    for role, by_table in GRANTS.items():
        for table, privileges in by_table.items():
            if tables is not None and table not in tables:
                continue
            for privilege in privileges:
                if not _PRIVILEGE.match(privilege):
                    raise ValueError(f"GRANTS[{role!r}][{table!r}]: bad privilege {privilege!r}")
                statements.append(f"GRANT {privilege} ON TABLE {_checked(table)} TO {_checked(role)}")
    return statements


ABBREVIATIONS = {"SELECT": "S", "INSERT": "I", "UPDATE": "U", "DELETE": "D"}


def _cell(privileges: tuple[str, ...]) -> str:
    shown = []
    for privilege in privileges:
        name, _, columns = privilege.partition("(")
        shown.append(ABBREVIATIONS[name] + (f"({columns}" if columns else ""))
    return " ".join(shown) or "-"


def matrix_markdown() -> str:
    """Roles x tables as a Markdown table (README's security model; `pinworks db roles --show`):
    S select, I insert, U update (U(a) only column a), D delete, - nothing."""
    roles = [role for role in ROLES if role != OWNER]
    header = ["table", *(role.removeprefix("pinworks_") for role in roles)]
    from pinworks_common.db.tables import metadata

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for table in sorted(metadata.tables):
        name = f"`{table}`" + (" (audit)" if table in APPEND_ONLY else
                               " (audit: verdict once)" if table in JUDGED_ONCE else "")
        cells = [_cell(GRANTS[role].get(table, ())) for role in roles]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def violations() -> list[str]:
    """Grants that break the audit rule (must be empty)."""
    return [f"{role} may {privilege} on {table}"
            for role, by_table in GRANTS.items() for table, privileges in by_table.items()
            for privilege in privileges
            if (table in APPEND_ONLY and privilege.split("(")[0] not in APPEND)
            or (table in JUDGED_ONCE and privilege not in (*APPEND, _QUALITY_VERDICT))]


def _create_role(conn: Connection, role: str) -> None:
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    if exists:
        return
    conn.execute(text(f"""
        DO $$ BEGIN CREATE ROLE {_checked(role)} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"""))


def apply_grants(conn: Connection) -> None:
    """Create missing roles, give every table to `OWNER`, and grant exactly `GRANTS`.

    Run by a superuser or by `OWNER` (which then needs CREATEROLE only if a role is missing).
    Idempotent; revokes anything granted outside this module."""
    for role in ROLES:
        _create_role(conn, role)
    others = ", ".join(role for role in ROLES if role != OWNER)
    tables = [row[0] for row in conn.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))]
    conn.execute(text(f"GRANT USAGE ON SCHEMA {_schema(conn)} TO {others}"))
    for table in tables:
        _checked(table)
        owner = conn.execute(text(
            "SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename = :t"), {"t": table}).scalar_one()
        if owner != OWNER:
            conn.execute(text(f"ALTER TABLE {table} OWNER TO {OWNER}"))
        conn.execute(text(f"REVOKE ALL ON TABLE {table} FROM PUBLIC, {others}"))
        sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"),
                                {"t": table}).scalar() if _has_id(conn, table) else None
        if sequence:
            conn.execute(text(f"REVOKE ALL ON SEQUENCE {sequence} FROM PUBLIC, {others}"))
            inserters = [role for role, by_table in GRANTS.items()
                         if "INSERT" in by_table.get(table, ())]
            if inserters:
                conn.execute(text(f"GRANT USAGE ON SEQUENCE {sequence} TO {', '.join(inserters)}"))
    for statement in grant_statements(set(tables)):
        conn.execute(text(statement))
    for function in conn.execute(text(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname = current_schema() "
            "AND p.proname LIKE 'pinworks\\_%' AND pg_get_userbyid(p.proowner) <> :owner"),
            {"owner": OWNER}).scalars():
        conn.execute(text(f"ALTER FUNCTION {function} OWNER TO {OWNER}"))


def _schema(conn: Connection) -> str:
    return _checked(conn.execute(text("SELECT current_schema()")).scalar_one())


def _has_id(conn: Connection, table: str) -> bool:
    return conn.execute(text(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = :t AND column_name = 'id'"), {"t": table}).first() is not None


def set_passwords(conn: Connection, passwords: Mapping[str, str]) -> None:
    """Give each role a login with its password (stored as SCRAM by Postgres)."""
    for role, password in passwords.items():
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        _create_role(conn, role)
        # a password cannot be a bind parameter in ALTER ROLE; quote it as a literal
        literal = "'" + password.replace("'", "''") + "'"
        conn.execute(text(f"ALTER ROLE {role} LOGIN PASSWORD {literal}"))


def role_url(database_url: str, role: str, password: str | None) -> str:
    """`database_url` (host, port, database) logging in as `role`."""
    url = make_url(database_url).set(username=role, password=password)
    return url.render_as_string(hide_password=False)


def generated_passwords() -> dict[str, str]:
    return {role: secrets.token_urlsafe(24) for role in ROLES}


def derived_passwords(seed: str) -> dict[str, str]:
    """Passwords that every holder of `seed` derives alike (test sessions sharing one server
    must not overwrite each other's; roles are cluster-wide)."""
    return {role: hashlib.sha256(f"{seed}:{role}".encode()).hexdigest()[:32] for role in ROLES}


def load_or_create_credentials(path: Path) -> dict[str, str]:
    """Per-role passwords kept in `path` (JSON, mode 0600), generated on first use."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    passwords = {role: str(stored[role]) for role in ROLES if isinstance(stored.get(role), str)}
    if passwords.keys() != set(ROLES):
        passwords = {**generated_passwords(), **passwords}
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(passwords, handle, indent=2)
    path.chmod(0o600)
    return passwords
