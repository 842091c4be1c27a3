"""Signing in, for the console and the CLI alike: a throttle per account and per address that
decides before any password is hashed, and server-side sessions.

Throttle: every attempt is counted (in `signin_throttle`, shared by every replica and the CLI)
*before* the password is verified, so parallel guesses cannot outrun it. More than
`account_attempts` attempts for one name, or `address_attempts` from one address, within
`window` lock that key for `lockout`, doubling with each further lockout up to `max_lockout`.
A locked key is refused without hashing, the right password too. A successful sign-in clears
the account's count.

Sessions: a sign-in issues a random token; Postgres keeps only its SHA-256 (`console_sessions`)
with the agent, the kind (browser, api, cli), a CSRF token and the expiry. Every request
looks the session up, so logout (`revoke`), a password change (`revoke_agent`) and expiry end
it at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pinworks_common.db.tables import agents, console_sessions, signin_throttle
from pinworks_escalation.auth import verify_password
from pinworks_escalation.queue import Agent
from pinworks_escalation.queue.agent_store import get_agent

SESSION_KINDS = ("browser", "api", "cli")


@dataclass(frozen=True)
class ThrottlePolicy:
    account_attempts: int = 5
    address_attempts: int = 20
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=1)
    max_lockout: timedelta = timedelta(hours=1)

    def lock_for(self, lockouts: int) -> timedelta:
        """The lockout after `lockouts` earlier ones: doubling, up to the cap."""
        return min(self.max_lockout, self.lockout * (2 ** min(lockouts, 20)))


@dataclass(frozen=True)
class SignInResult:
    """What a sign-in attempt came to: the agent, or `refused` = wrong or locked."""

    agent: Agent | None
    refused: str | None = None
    retry_after_seconds: int = 0


def account_key(name: str) -> str:
    return f"agent:{name.lower()[:128]}"


def address_key(address: str | None) -> str:
    return f"address:{(address or 'unknown')[:128]}"


async def _count_attempt(conn: AsyncConnection, key: str, limit: int,
                         policy: ThrottlePolicy) -> datetime | None:
    """Count one attempt on `key`; when it is (or becomes) locked, until when."""
    await conn.execute(insert(signin_throttle).values(key=key).on_conflict_do_nothing())
    row = (await conn.execute(select(signin_throttle, func.now().label("now"))
                              .where(signin_throttle.c.key == key).with_for_update())).one()
    now = row.now
    if row.locked_until is not None and row.locked_until > now:
        return row.locked_until  # locked: refused, not counted again, not hashed
    attempts, started = row.attempts + 1, row.window_started_at
    if now - started > policy.window:
        attempts, started = 1, now
    values: dict[str, object] = {"attempts": attempts, "window_started_at": started,
                                 "updated_at": now, "locked_until": None}
    locked_until = None
    if attempts > limit:
        locked_until = now + policy.lock_for(row.lockouts)
        values.update(attempts=0, window_started_at=now, lockouts=row.lockouts + 1,
                      locked_until=locked_until)
    await conn.execute(update(signin_throttle).where(signin_throttle.c.key == key).values(**values))
    return locked_until


async def admit(engine: AsyncEngine, name: str, address: str | None,
                policy: ThrottlePolicy) -> datetime | None:
    """Count the attempt for the account and the address; None admits it to password
    verification, a time says until when one of them is locked."""
    async with engine.begin() as conn:
        await conn.execute(delete(signin_throttle).where(
            signin_throttle.c.updated_at < func.now() - timedelta(days=1),
            (signin_throttle.c.locked_until.is_(None))
            | (signin_throttle.c.locked_until < func.now())))
        locks = [await _count_attempt(conn, account_key(name), policy.account_attempts, policy),
                 await _count_attempt(conn, address_key(address), policy.address_attempts,
                                      policy)]
    found = [lock for lock in locks if lock is not None]
    return max(found) if found else None


async def _succeeded(engine: AsyncEngine, name: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(signin_throttle).where(
            signin_throttle.c.key == account_key(name)))


async def sign_in(engine: AsyncEngine, name: str, password: str, address: str | None,
                  policy: ThrottlePolicy) -> SignInResult:
    """The agent if the password is theirs and neither the name nor the address is locked;
    an unknown name costs as much as a wrong password and is throttled the same way."""
    locked_until = await admit(engine, name, address, policy)
    if locked_until is not None:
        async with engine.connect() as conn:
            now = (await conn.execute(select(func.now()))).scalar_one()
        return SignInResult(None, "locked", max(1, int((locked_until - now).total_seconds()) + 1))
    async with engine.connect() as conn:
        agent = await get_agent(conn, name)
    ok = await anyio.to_thread.run_sync(
        verify_password, agent.password_hash if agent else None, password)
    if not ok or agent is None:
        return SignInResult(None, "wrong")
    await _succeeded(engine, name)
    return SignInResult(agent)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    """A live session: its agent (as stored now), its CSRF token and kind."""

    agent: Agent
    csrf_token: str
    kind: str
    expires_at: datetime


async def open_session(conn: AsyncConnection, agent: str, kind: str, lifetime: timedelta,
                       address: str | None = None) -> tuple[str, Session]:
    """A new session for the agent: the token (shown once, stored only as its digest)."""
    if kind not in SESSION_KINDS:
        raise ValueError(f"unknown session kind {kind!r}")
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires_at = (await conn.execute(
        insert(console_sessions).values(
            token_digest=digest(token), agent=agent, kind=kind, csrf_token=csrf,
            address=(address or None) and address[:128], expires_at=func.now() + lifetime)
        .returning(console_sessions.c.expires_at))).scalar_one()
    found = await get_agent(conn, agent)
    if found is None:
        raise ValueError(f"no agent {agent}")
    return token, Session(found, csrf, kind, expires_at)


async def session_of(conn: AsyncConnection, token: str | None) -> Session | None:
    """The live session of a token: not revoked, not expired, its agent still there."""
    if not token or len(token) > 256:
        return None
    row = (await conn.execute(
        select(console_sessions.c.csrf_token, console_sessions.c.kind,
               console_sessions.c.expires_at, agents.c.name, agents.c.password_hash,
               agents.c.business_units)
        .join(agents, agents.c.name == console_sessions.c.agent)
        .where(console_sessions.c.token_digest == digest(token),
               console_sessions.c.revoked_at.is_(None),
               console_sessions.c.expires_at > func.now()))).first()
    if row is None:
        return None
    return Session(Agent(row.name, row.password_hash, tuple(row.business_units)),
                   row.csrf_token, row.kind, row.expires_at)


async def revoke(conn: AsyncConnection, token: str | None) -> bool:
    """End the token's session (logout); whether there was one to end."""
    if not token:
        return False
    result = await conn.execute(
        update(console_sessions).where(console_sessions.c.token_digest == digest(token),
                                       console_sessions.c.revoked_at.is_(None))
        .values(revoked_at=func.now()))
    return bool(result.rowcount)


async def revoke_agent(conn: AsyncConnection, agent: str) -> int:
    """End every session of the agent (a password change); how many were live."""
    result = await conn.execute(
        update(console_sessions).where(console_sessions.c.agent == agent,
                                       console_sessions.c.revoked_at.is_(None))
        .values(revoked_at=func.now()))
    return int(result.rowcount)
