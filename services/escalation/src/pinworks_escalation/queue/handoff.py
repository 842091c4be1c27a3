"""What agents' actions publish, written to the outbox in the action's own transaction (the
escalation service's relay publishes it): a corrected ticket handed back to the router, and
the human `resolved` outcome (its publication built by the ledger that stores it, under the
outcome's `HUMAN_OUTCOME_KEY`)."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.db.tables import outbox
from pinworks_common.ledger import Publication
from pinworks_common.outbox import announce
from pinworks_contracts.messages import TicketEnvelope
from pinworks_contracts.subjects import CLASSIFIED, WORK_STREAM, agent_return_message_id

HUMAN_OUTCOME_KEY = "human"


def automation_retry(
    ticket_id: str, envelope: dict[str, Any], agent: str, attempt: int
) -> Publication:
    """The ticket with the agent's classification (certain, in scope, no route or draft yet)
    as the next automation attempt, for the router."""
    corrected = TicketEnvelope.model_validate({
        **envelope,
        "classification": {
            **envelope["classification"],
            "confidence": 1.0,
            "out_of_scope": False,
            "model_version": f"agent:{agent}",
        },
        "route": None,
        "draft": None,
        "attempt": attempt,
    })
    headers: dict[str, str] = {}
    if corrected.trace_id:
        headers["traceparent"] = f"00-{corrected.trace_id}-{secrets.token_hex(8)}-01"
    return Publication(
        subject=CLASSIFIED,
        payload=corrected.model_dump_json().encode(),
        msg_id=agent_return_message_id(ticket_id, attempt),
        stream=WORK_STREAM,
        headers=headers,
    )


async def to_outbox(conn: AsyncConnection, publication: Publication) -> None:
    """Stage `publication` in the outbox, the relays told at commit; a second write of the same
    message id is a no-op."""
    await conn.execute(insert(outbox).values(
        subject=publication.subject,
        msg_id=publication.msg_id,
        payload=publication.payload,
        headers={"Pinworks-Stream": publication.stream, **publication.headers},
    ).on_conflict_do_nothing(index_elements=["msg_id"]))
    await announce(conn)
