"""`pinworks login` against the running console: the CLI's queue commands act as the signed-in
agent with exactly the console's business-unit scoping and its refusals word for word; the
token is private, short-lived, refused once expired or revoked, and `pinworks logout` revokes
it; an unknown agent and a brute force are refused as the console refuses them."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from .conftest import (
    AGENT_PASSWORD,
    Platform,
    PlatformClient,
    cli,
    console_says,
    escalate,
    run_id,
    signed_in_env,
    stored,
)

pytestmark = pytest.mark.e2e


def file_mode_and_text(env: dict[str, str]) -> tuple[int, str]:
    path = Path(env["PINWORKS_AGENT_TOKEN_FILE"])
    return stat.S_IMODE(path.stat().st_mode), path.read_text()


def rewrite(env: dict[str, str], **changes: str) -> None:
    path = Path(env["PINWORKS_AGENT_TOKEN_FILE"])
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


async def test_the_queue_commands_act_as_the_signed_in_agent_within_their_units(
        client: PlatformClient, platform: Platform, tmp_path: Path) -> None:
    rid = run_id()
    retail, business = f"retail-{rid}", f"business-{rid}"
    mine, theirs = f"{rid}-retail", f"{rid}-business"
    await escalate(client, [mine], retail)
    await escalate(client, [theirs], business)
    ana = signed_in_env(platform, tmp_path, f"ana-{rid}", retail)
    cy = signed_in_env(platform, tmp_path, f"cy-{rid}", business)
    mode, text_stored = file_mode_and_text(cy)
    assert mode == 0o600
    assert AGENT_PASSWORD not in text_stored, "the password is never stored"
    assert cli(cy, "whoami").stdout.startswith(f"cy-{rid} ({business}) until ")

    listed = cli(cy, "queue", "list", "--json", "--limit", "500")
    assert listed.returncode == 0, listed.stderr
    ids = [item["ticket_id"] for item in json.loads(listed.stdout)]
    assert theirs in ids and mine not in ids
    assert {item["business_unit"] for item in json.loads(listed.stdout)} == {business}
    other_unit = cli(cy, "queue", "list", "--business-unit", retail, "--json")
    assert other_unit.returncode == 0 and json.loads(other_unit.stdout) == []

    for command, (method, path, body) in {
        ("show", mine): ("GET", f"/api/tickets/{mine}", {}),
        ("claim", mine): ("POST", f"/api/tickets/{mine}/claim", {}),
        ("resolve", mine, "--reply", "Hello"): ("POST", f"/api/tickets/{mine}/resolve",
                                                {"reply": "Hello"}),
        ("release", mine): ("POST", f"/api/tickets/{mine}/release", {}),
    }.items():
        refused = cli(cy, "queue", *command)
        status, detail = console_says(platform, cy, method, path, **body)
        assert status == 404 and detail == f"no escalated ticket {mine}"
        assert (refused.returncode, refused.stderr) == (1, f"error: {detail}\n"), command
    nothing = cli(cy, "queue", "claim", "--business-unit", retail)
    assert (nothing.returncode, nothing.stderr) == (1, "error: nothing to claim\n")

    claimed = cli(ana, "queue", "claim", "--business-unit", retail)
    assert claimed.returncode == 0, claimed.stderr
    assert f"claimed {mine} until " in claimed.stdout
    assert "customer: Can you recommend a good hotel" in claimed.stdout
    held = cli(cy, "queue", "resolve", mine, "--reply", "Hi")
    assert (held.returncode, held.stderr) == (1, f"error: no escalated ticket {mine}\n")
    reply = "We only handle banking questions; our travel partner can help."
    resolved = cli(ana, "queue", "resolve", mine, "--reply", reply)
    assert resolved.returncode == 0, resolved.stderr
    assert json.loads(resolved.stdout)["resolved_by"] == f"ana-{rid}"
    human = (await client.outcomes.wait_for([mine], count=2))[mine][1]
    assert (human["status"], human["resolved_by"], human["answer"]) == (
        "resolved", f"ana-{rid}", reply)
    actions = await client.fetch(
        "SELECT actor, action FROM accountability WHERE ticket_id = :t AND actor_type = 'person' "
        "ORDER BY id", t=mine)
    assert [(row.actor, row.action) for row in actions] == [
        (f"ana-{rid}", "claim"), (f"ana-{rid}", "resolve")]
    [session] = await client.fetch(
        "SELECT kind, expires_at - created_at AS lasts FROM console_sessions "
        "WHERE token_digest = :d", d=hashlib.sha256(stored(ana)["token"].encode()).hexdigest())
    assert session.kind == "cli"
    assert abs(session.lasts - timedelta(hours=8)) < timedelta(minutes=1), \
        "PINWORKS_AGENT_TOKEN_HOURS (8), not the console's 12-hour sign-in"


def test_an_unknown_agent_and_a_brute_force_are_refused_without_a_token(
        platform: Platform, tmp_path: Path) -> None:
    rid = run_id()
    env = {**platform.env, "PINWORKS_AGENT_TOKEN_FILE": str(tmp_path / "token.json"),
           "PINWORKS_AGENT_PASSWORD": "not the password"}
    unknown = cli(env, "login", f"nobody-{rid}")
    assert (unknown.returncode, unknown.stderr) == (1, "error: unknown agent or wrong password\n")
    added = cli(platform.env, "agent", "add", f"dee-{rid}", "--business-unit", f"retail-{rid}",
                "--password", AGENT_PASSWORD)
    assert added.returncode == 0, added.stderr
    for _ in range(5):  # ESCALATION_SIGNIN_ACCOUNT_ATTEMPTS
        wrong = cli(env, "login", f"dee-{rid}")
        assert wrong.stderr == "error: unknown agent or wrong password\n"
    locked = cli(env, "login", f"dee-{rid}")
    assert locked.returncode == 1
    assert locked.stderr.startswith("error: too many sign-in attempts: try again later (in ")
    right = cli({**env, "PINWORKS_AGENT_PASSWORD": AGENT_PASSWORD}, "login", f"dee-{rid}")
    assert right.returncode == 1 and "too many sign-in attempts" in right.stderr, \
        "locked: the right password is refused too"
    assert stored(env) is None, "no token stored"
    not_signed_in = cli(env, "queue", "list")
    assert (not_signed_in.returncode, not_signed_in.stderr) == (
        1, "error: not signed in on this terminal: run `pinworks login`\n")


async def test_logout_expiry_and_a_new_password_end_the_cli_sign_in(
        client: PlatformClient, platform: Platform, tmp_path: Path) -> None:
    rid = run_id()
    name, unit = f"eve-{rid}", f"retail-{rid}"
    env = signed_in_env(platform, tmp_path, name, unit)
    token = stored(env)["token"]
    signed_out = cli(env, "logout")
    assert signed_out.returncode == 0, signed_out.stderr
    assert "the console revoked the token" in signed_out.stdout
    assert stored(env) is None, "the token file is gone"
    async with httpx.AsyncClient(base_url=platform.env["ESCALATION_URL"], timeout=30) as http:
        me = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401, "the old token no longer works anywhere"
    assert "not signed in" in cli(env, "queue", "list").stderr

    no_longer = ("error: the console no longer accepts your sign-in (signed out, expired or "
                 "the password changed): run `pinworks login`\n")
    assert cli(env, "login", name).returncode == 0
    async with client.engine.begin() as conn:
        await conn.execute(text("UPDATE console_sessions SET expires_at = now() - interval '1 s' "
                                "WHERE token_digest = :d"),
                           {"d": hashlib.sha256(stored(env)["token"].encode()).hexdigest()})
    expired = cli(env, "queue", "list")
    assert (expired.returncode, expired.stderr) == (1, no_longer)

    assert cli(env, "login", name).returncode == 0
    changed = cli(platform.env, "agent", "add", name, "--business-unit", unit,
                  "--password", "another long password")
    assert changed.returncode == 0, changed.stderr
    revoked = cli(env, "queue", "list")
    assert (revoked.returncode, revoked.stderr) == (1, no_longer)

    rewrite(env, expires_at=(datetime.now(UTC) - timedelta(minutes=1)).isoformat())
    stale = cli(env, "queue", "list")
    assert stale.returncode == 1 and f"your sign-in as {name} expired at" in stale.stderr
