"""Option values that more than one command group parses the same way."""

from __future__ import annotations

from datetime import UTC, datetime

import typer


def parse_when(value: str) -> datetime:
    """An ISO date (midnight UTC) or datetime (UTC when no zone is given)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO date (2026-11-01) or datetime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
