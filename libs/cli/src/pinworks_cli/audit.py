"""Read a ticket's whole trail from Postgres, and render it for people."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.db.tables import (
    accountability,
    cost_ledger,
    dead_letters,
    decisions,
    escalations,
    outcomes,
    rejected_payloads,
    tickets,
)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def _rows(conn: AsyncConnection, table: Table, ticket_id: str, order: str) -> list[dict]:
    result = await conn.execute(
        select(table).where(table.c.ticket_id == ticket_id).order_by(table.c[order])
    )
    return [_plain(dict(row._mapping)) for row in result]


async def _rejected_carrying(conn: AsyncConnection, ticket_id: str) -> list[dict[str, Any]]:
    """Rejected payloads whose id could not be read (NULL ticket_id) but whose raw text holds
    this id as a JSON string: what `submit --ticket-id 'bad id'` left behind."""
    needle = json.dumps(ticket_id)
    result = await conn.execute(
        select(rejected_payloads)
        .where(rejected_payloads.c.ticket_id.is_(None),
               rejected_payloads.c.raw_payload.contains(needle, autoescape=True))
        .order_by(rejected_payloads.c.id).limit(20))
    return [_plain(dict(row._mapping)) for row in result]


def _empty_trail(rejected: list[dict[str, Any]]) -> dict[str, Any]:
    return {"ticket": None, "decisions": [], "costs": [], "total_cost_usd": 0.0, "outcomes": [],
            "escalation": None, "accountability": [], "rejected_payloads": rejected,
            "dead_letters": []}


async def rejected_trail(conn: AsyncConnection, stream_seq: int) -> dict[str, Any] | None:
    """The trail of one submission by its stream sequence: its rejection, or its ticket."""
    row = (await conn.execute(select(rejected_payloads).where(
        rejected_payloads.c.stream_seq == stream_seq))).first()
    if row is not None:
        return _empty_trail([_plain(dict(row._mapping))])
    ticket = (await conn.execute(select(tickets.c.ticket_id).where(
        tickets.c.submission_seq == stream_seq))).first()
    return await ticket_trail(conn, ticket.ticket_id) if ticket else None


async def ticket_trail(conn: AsyncConnection, ticket_id: str) -> dict[str, Any] | None:
    ticket = (await conn.execute(select(tickets).where(tickets.c.ticket_id == ticket_id))).first()
    rejected = await _rows(conn, rejected_payloads, ticket_id, "id")
    if ticket is None and not rejected:
        carrying = await _rejected_carrying(conn, ticket_id)
        return _empty_trail(carrying) if carrying else None
    if ticket is None and not rejected:
        return None
    costs = await _rows(conn, cost_ledger, ticket_id, "id")
    escalation = await _rows(conn, escalations, ticket_id, "created_at")
    return {
        "ticket": _plain(dict(ticket._mapping)) if ticket else None,
        "decisions": await _rows(conn, decisions, ticket_id, "id"),
        "costs": costs,
        "total_cost_usd": round(sum(entry["amount_usd"] for entry in costs), 6),
        "outcomes": await _rows(conn, outcomes, ticket_id, "id"),
        "escalation": escalation[0] if escalation else None,
        "accountability": await _rows(conn, accountability, ticket_id, "id"),
        "rejected_payloads": rejected,
        "dead_letters": await _rows(conn, dead_letters, ticket_id, "id"),
    }


def _decision_details(decision: dict[str, Any]) -> list[str]:
    """What explains a decision: its output's own reason, versions it relied on, budget state,
    latency."""
    inputs = decision["inputs"] if isinstance(decision["inputs"], dict) else {}
    output = decision["output"] if isinstance(decision["output"], dict) else {}
    details = []
    if isinstance(output.get("reason"), str):  # a routing decision's why: its row says the rule
        details.append(f"why: {output['reason']}")
    if inputs.get("classifier_version"):
        details.append(f"classifier {inputs['classifier_version']}, intent {inputs.get('intent')} "
                       f"at {inputs.get('confidence')}")
    budget = output.get("budget")
    if budget:
        details.append(f"budget {json.dumps(budget, default=str)}")
    if decision.get("latency_ms") is not None:
        details.append(f"latency {decision['latency_ms']:.2f} ms")
    return details


def render_trail(trail: dict[str, Any]) -> str:
    """A readable chain: who decided what, with which version, why, at what cost."""
    lines = []
    ticket = trail["ticket"]
    if ticket:
        lines.append(f"Ticket {ticket['ticket_id']}  business unit {ticket['business_unit']}  "
                     f"trace {ticket['trace_id']}")
        lines.append(f"  received {ticket['received_at']}  channel {ticket['channel'] or '-'}")
        lines.append(f"  body: {ticket['body'][:200]!r}")
    for rejected in trail["rejected_payloads"]:
        lines.append(f"Rejected payload (stream seq {rejected['stream_seq']}, "
                     f"{rejected['payload_bytes']} bytes, {rejected['created_at']}): "
                     f"{'; '.join(rejected['reasons'])}")
        lines.append(f"  payload: {rejected['raw_payload'][:200]}")
    if ticket is None:
        return "\n".join(lines)  # never accepted: no decisions, costs or outcome to show
    lines.append("Decisions:")
    for decision in trail["decisions"]:
        lines.append(f"  {decision['created_at']}  {decision['stage']:<10} "
                     f"{decision['component']} [{decision['version']}]  "
                     f"cost ${decision['cost_usd']:.6f}")
        lines.append(f"      {decision['reason']}")
        lines.extend(f"      {detail}" for detail in _decision_details(decision))
        for passed in decision["output"].get("passed_over", []) if isinstance(
                decision["output"], dict) else []:
            lines.append(f"      passed over {passed['rule']}: {passed['why']}")
    entries = ", ".join(f"{c['component']} ${c['amount_usd']:.6f}" for c in trail["costs"])
    lines.append(f"Cost: ${trail['total_cost_usd']:.6f} ({entries})")
    for outcome in trail["outcomes"]:
        payload = outcome["payload"]
        lines.append(f"Outcome {payload['status']} by {payload['resolved_by']} at "
                     f"{payload['decided_at']}: "
                     + (payload.get("answer") or "; ".join(payload.get("reasons") or []))[:300])
    escalation = trail["escalation"]
    if escalation:
        lines.append(f"Escalation: {escalation['status']} priority {escalation['priority']} "
                     f"claimed by {escalation['claimed_by'] or '-'}")
    lines.append("Accountability:")
    for event in trail["accountability"]:
        lines.append(f"  {event['created_at']}  {event['actor_type']} {event['actor']}: "
                     f"{event['action']} [{event['version'] or '-'}]")
    for letter in trail["dead_letters"]:
        lines.append(f"Dead letter at {letter['stage']}: {letter['error']}")
    return "\n".join(lines)
