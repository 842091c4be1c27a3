"""Agents' credentials and console sessions.

Passwords are stored as argon2id hashes (argon2-cffi); a session is the agent's name in a
cookie signed with `ESCALATION_SESSION_SECRET` and stamped with its issue time, so it cannot be
forged or extended. The agent's business units are read from Postgres on every request: a
change takes effect at once.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this keeps an unknown name as slow as a wrong password."""
    return _hasher.hash(secrets.token_hex(16))

MIN_PASSWORD_CHARS = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class Sessions:
    """Signed, time-limited session tokens carrying the agent's name."""

    def __init__(self, secret: str, max_age_seconds: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="pinworks-console-session")
        self.max_age_seconds = max(1, int(max_age_seconds))

    def issue(self, agent: str) -> str:
        return self._serializer.dumps({"agent": agent})

    def agent_of(self, token: str | None) -> str | None:
        if not token:
            return None
        try:
            data = self._serializer.loads(token, max_age=self.max_age_seconds)
        except BadSignature:  # also SignatureExpired
            return None
        agent = data.get("agent") if isinstance(data, dict) else None
        return agent if isinstance(agent, str) else None
