"""The messages the console's pages show, chosen by fixed codes: a link cannot make a page
say what its author wrote."""

from __future__ import annotations

MESSAGES = {
    "wrong": "Unknown agent or wrong password.",
    "locked": "Too many sign-in attempts: this sign-in is locked for a while. Try again later.",
}


def message(code: str | None) -> str | None:
    """The message of a code; None for no code or one the console does not know."""
    return MESSAGES.get(code) if code else None
