"""Agents' passwords: argon2id hashes (argon2-cffi), verified in constant time for unknown
names too. Every verification is counted (`pinworks_console_password_checks_total`): the
sign-in throttle (`signin`) decides before any of this work is done."""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prometheus_client import Counter

_hasher = PasswordHasher()

PASSWORD_CHECKS = Counter(
    "pinworks_console_password_checks", "Password verifications (argon2id) the console or CLI ran.")

MIN_PASSWORD_CHARS = 8


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this keeps an unknown name as slow as a wrong password."""
    return _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    PASSWORD_CHECKS.inc()
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
