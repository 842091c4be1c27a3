"""Passwords and the throttle's lockout, without I/O (sessions and the throttle itself are
tested on Postgres in tests/integration/test_console_signin.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pinworks_escalation.auth import PASSWORD_CHECKS, hash_password, verify_password
from pinworks_escalation.signin import ThrottlePolicy


def test_passwords_are_stored_as_argon2id_hashes_and_verified() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterz")
    assert not verify_password(None, "correct horse battery"), "unknown agent"
    assert not verify_password("not-a-hash", "correct horse battery")


def test_short_passwords_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


def test_every_verification_is_counted() -> None:
    before = PASSWORD_CHECKS._value.get()
    verify_password(None, "whatever it is")
    assert PASSWORD_CHECKS._value.get() == before + 1


def test_each_lockout_doubles_up_to_the_cap() -> None:
    policy = ThrottlePolicy(lockout=timedelta(seconds=30), max_lockout=timedelta(minutes=4))
    assert [policy.lock_for(n).total_seconds() for n in range(6)] == [30, 60, 120, 240, 240, 240]
