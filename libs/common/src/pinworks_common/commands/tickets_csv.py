"""Tickets from a CSV file, for `pinworks replay` and `pinworks policy simulate`.

Column names are matched without regard to case, spaces or dashes, and the usual aliases work:

    ticket id      ticket_id, id, ticket                     (default: FILE-ROW, so a rerun is idempotent)
    message        body, text, message, description          (required)
    business unit  business_unit, unit, bu                   (default: retail)
    subject        subject, title
    channel        channel, source
    customer       customer_id, customer
    metadata       metadata (a JSON object); any other column becomes a metadata key
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import typer

ALIASES: dict[str, tuple[str, ...]] = {
    "ticket_id": ("ticket_id", "id", "ticket", "ticketid"),
    "body": ("body", "text", "message", "description"),
    "business_unit": ("business_unit", "unit", "bu", "businessunit"),
    "subject": ("subject", "title"),
    "channel": ("channel", "source"),
    "customer_id": ("customer_id", "customer", "customerid"),
    "metadata": ("metadata",),
}
COLUMNS_HELP = ("CSV with a header row: body (or text, message), and optionally ticket_id "
                "(or id), business_unit (or unit), subject, channel, customer_id, metadata "
                "(JSON); other columns become metadata keys.")


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def column_map(fieldnames: list[str]) -> dict[str, str]:
    """Which header column feeds each ticket field (the first alias present wins)."""
    by_key = {_key(name): name for name in fieldnames if name}
    mapping = {}
    for field, aliases in ALIASES.items():
        for alias in aliases:
            if alias in by_key:
                mapping[field] = by_key[alias]
                break
    return mapping


def read_ticket_rows(path: Path, default_id: str = "{stem}-{row}") -> list[dict[str, Any]]:
    """One ticket dict per data row; ``default_id`` names a row without an id from the file's
    stem, its row number (1 = first after the header) or its line number in the file."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise typer.BadParameter(f"{path} is empty; {COLUMNS_HELP}")
        mapping = column_map(list(reader.fieldnames))
        if "body" not in mapping:
            raise typer.BadParameter(f"{path} needs a `body` (or `text`, `message`) column; "
                                     f"found {', '.join(reader.fieldnames)}")
        used = set(mapping.values())
        stem = "".join(c if c.isalnum() or c in "._:-" else "-" for c in path.stem)[:80]
        rows = []
        for number, row in enumerate(reader, start=1):
            value = {field: (row.get(column) or "").strip() for field, column in mapping.items()}
            ticket: dict[str, Any] = {
                "ticket_id": value.get("ticket_id")
                or default_id.format(stem=stem, row=number, line=number + 1),
                "business_unit": value.get("business_unit") or "retail",
                "body": row.get(mapping["body"]) or "",
            }
            for field in ("subject", "channel", "customer_id"):
                if value.get(field):
                    ticket[field] = value[field]
            metadata: dict[str, Any] = {}
            if value.get("metadata"):
                try:
                    metadata = json.loads(value["metadata"])
                except json.JSONDecodeError as exc:
                    raise typer.BadParameter(
                        f"{path} line {number + 1}: metadata is not JSON: {exc}") from None
            for column, cell in row.items():
                if column and column not in used and cell:
                    metadata[column] = cell
            if metadata:
                ticket["metadata"] = metadata
            rows.append(ticket)
    return rows
