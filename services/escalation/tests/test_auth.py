"""Passwords and console sessions, without I/O."""

from __future__ import annotations

import time

import pytest

from pinworks_escalation.auth import Sessions, hash_password, verify_password


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


def test_a_session_names_its_agent_and_cannot_be_forged() -> None:
    sessions = Sessions("secret-one", max_age_seconds=3600)
    token = sessions.issue("ana")
    assert sessions.agent_of(token) == "ana"
    assert Sessions("secret-two", 3600).agent_of(token) is None, "another key"
    assert sessions.agent_of(token[:-2] + ("AA" if token[-2:] != "AA" else "BB")) is None
    assert sessions.agent_of(None) is None and sessions.agent_of("") is None


def test_a_session_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = Sessions("secret", max_age_seconds=60)
    token = sessions.issue("ana")
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert sessions.agent_of(token) is None
