"""How useful the console's suggested replies are to agents, per intent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy import true as sa_true
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.db.tables import accountability, escalations
from pinworks_contracts.intents import intent_label


async def assist_usefulness(
    conn: AsyncConnection, business_units: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Per intent: how many agent replies started from a suggestion, how similar what they sent
    was to it (1.0 = sent unchanged), and how many were sent unchanged."""
    rows = (await conn.execute(
        select(accountability.c.details, escalations.c.business_unit)
        .join(escalations, escalations.c.ticket_id == accountability.c.ticket_id)
        .where(accountability.c.action == "resolve", accountability.c.actor_type == "person")
        .where(escalations.c.business_unit.in_(list(business_units))
               if business_units is not None else sa_true())
    )).all()
    return usefulness_by_intent(row.details or {} for row in rows)


def usefulness_by_intent(resolutions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report, by intent name, from the details of agents' `resolve` actions; a resolution
    without suggestions on offer (no `assist`) does not count."""
    by_intent: dict[str, dict[str, Any]] = {}
    for details in resolutions:
        assist = details.get("assist")
        if assist is None:
            continue
        entry = by_intent.setdefault(details.get("intent") or "-", {
            "resolved": 0, "from_suggestion": 0, "similarities": [], "unchanged": 0,
            "closest": []})
        entry["resolved"] += 1
        if assist.get("closest_similarity") is not None:
            entry["closest"].append(float(assist["closest_similarity"]))
        if assist.get("used"):
            entry["from_suggestion"] += 1
            entry["similarities"].append(float(assist.get("similarity") or 0))
            entry["unchanged"] += int(bool(assist.get("unchanged")))
    return [_report_line(intent, entry) for intent, entry in sorted(by_intent.items())]


def _report_line(intent: str, entry: dict[str, Any]) -> dict[str, Any]:
    similarities, closest = entry["similarities"], entry["closest"]
    return {
        "intent": intent, "intent_label": intent_label(intent),
        "resolved": entry["resolved"], "from_suggestion": entry["from_suggestion"],
        "mean_similarity": round(sum(similarities) / len(similarities), 3)
        if similarities else None,
        "unchanged": entry["unchanged"],
        "mean_closest_similarity": round(sum(closest) / len(closest), 3) if closest else None,
    }
