"""The specialist stage: one durable consumer per handler; drafts go to the verifier, declines go
down the route's fallback chain (or to a person).

A batch's handler calls run concurrently (at most `concurrency` at once) and never raise: an
exception or a call past `timeout_seconds` becomes a decline with its reason, so a ticket always
moves on and a consumer never crashes. Tickets already decided (a redelivery) are not handled
again: the first stored decision is republished. While calls run, the batch's messages are kept
in progress so JetStream does not redeliver them mid-call, and no database connection is held:
the calls happen before the transaction that records them opens (a model can take minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pinworks_common.contracts import Draft, TicketEnvelope
from pinworks_common.db.records import (
    record_accountability,
    record_costs,
    record_decisions,
    stored_outputs,
)
from pinworks_common.stage import Commit, Delivery, Publication, Work, decode_model
from pinworks_common.subjects import Stage, attempt_key
from pinworks_specialists.fallback import current_hops, publication_for, settle
from pinworks_specialists.handlers import Declined, Handler
from pinworks_specialists.metrics import observe_calls, observe_recorded
from pinworks_specialists.settings import Price

log = logging.getLogger("pinworks.specialists")


async def call_handler(handler: Handler, envelope: TicketEnvelope, timeout_seconds: float
                       ) -> Draft | Declined:
    """One handler call that always returns: errors and overruns become declines."""
    try:
        return await asyncio.wait_for(handler.handle(envelope), timeout_seconds)
    except TimeoutError:
        return Declined(f"{handler.name} did not finish within {timeout_seconds:g}s",
                        kind="timeout")
    except Exception as error:  # noqa: BLE001 - a handler bug must not stall the ticket
        log.exception("%s failed on %s", handler.name, envelope.ticket.ticket_id)
        return Declined(f"{handler.name} failed: {type(error).__name__}: {error}", kind="error")


class SpecialistStage:
    stage = Stage.SPECIALIST.value

    def __init__(self, handler: Handler, price: Price | None = None, *, concurrency: int = 16,
                 timeout_seconds: float = 120.0, heartbeat_seconds: float = 10.0) -> None:
        self.handler = handler
        self.price = price or Price()
        self.decision_key = f"draft:{handler.name}"  # `@n` appended for automation attempt n
        self.component = f"specialist:{handler.name}"
        self.concurrency = concurrency
        self.timeout_seconds = timeout_seconds
        self.heartbeat_seconds = heartbeat_seconds

    def decode(self, delivery: Delivery) -> TicketEnvelope:
        envelope: TicketEnvelope = decode_model(TicketEnvelope, delivery)
        if envelope.classification is None or envelope.route is None:
            raise ValueError("routed ticket carries no classification or route")
        return envelope

    async def _run_all(self, work: Sequence[Work[TicketEnvelope]]
                       ) -> list[tuple[Draft | Declined, float]]:
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(item: Work[TicketEnvelope]) -> tuple[Draft | Declined, float]:
            async with semaphore:
                started = time.perf_counter()
                result = await call_handler(self.handler, item.value, self.timeout_seconds)
                return result, (time.perf_counter() - started) * 1000

        heartbeat = asyncio.create_task(self._keep_in_progress(work))
        try:
            return list(await asyncio.gather(*(one(item) for item in work)))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _keep_in_progress(self, work: Sequence[Work[TicketEnvelope]]) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            for item in work:
                with contextlib.suppress(Exception):
                    await item.delivery.message.in_progress()

    async def prepare(self, engine: AsyncEngine, work: Sequence[Work[TicketEnvelope]]) -> Commit:
        """Call the handler for every ticket not yet decided, with no connection held while the
        calls run; the returned body records the results in the runner's transaction."""
        async with engine.connect() as conn:
            decided = await self._stored(conn, work)
        todo: list[Work[TicketEnvelope]] = []
        seen = set(decided)  # each ticket once: already decided, or a second copy in this batch
        for item in work:
            if _identity(item) not in seen:
                seen.add(_identity(item))
                todo.append(item)
        results = await self._run_all(todo) if todo else []
        observe_calls(self.handler.name, [result for result, _ in results])

        async def commit(conn: AsyncConnection) -> list[Publication]:
            return await self._record(conn, work, todo, results)

        return commit

    async def _record(
        self,
        conn: AsyncConnection,
        work: Sequence[Work[TicketEnvelope]],
        todo: Sequence[Work[TicketEnvelope]],
        results: Sequence[tuple[Draft | Declined, float]],
    ) -> list[Publication]:
        """Decisions, costs and accountability of the handled tickets (a ticket another
        delivery recorded meanwhile keeps its first record), then the stored decision of every
        ticket in the batch is what gets published."""
        decisions: list[dict[str, Any]] = []
        costs: list[dict[str, Any]] = []
        accountability: list[dict[str, Any]] = []
        for item, (result, latency_ms) in zip(todo, results, strict=True):
            envelope = item.value
            ticket = envelope.ticket
            output = settle(envelope, self.handler.name, self.handler.version, result)
            cost = result.cost_usd
            details = result.details
            usage = {
                "input_tokens": int(details.get("input_tokens", 0) or 0),
                "output_tokens": int(details.get("output_tokens", 0) or 0),
                "tokens_estimated": bool(details.get("tokens_estimated", False)),
            }
            key = attempt_key(self.decision_key, envelope.attempt)
            earlier = current_hops(envelope)
            hop = len(earlier)
            if isinstance(result, Draft):
                reason, action = "drafted an answer", "draft"
            else:
                reason = f"{result.kind}: {result.reason}; next: {output['next']}"
                action = f"{result.kind}, pass to {output['next']}"
            decisions.append({
                "ticket_id": ticket.ticket_id,
                "stage": self.stage,
                "decision_key": key,
                "component": self.component,
                "version": self.handler.version,
                "inputs": {
                    "intent": envelope.classification.intent if envelope.classification else None,
                    "route_rule": envelope.route.rule if envelope.route else None,
                    "hop": hop,
                    "after": [a.handler for a in earlier],
                    "automation_attempt": envelope.attempt,
                    "price": self.price.model_dump(mode="json"),
                },
                "output": {**output, "usage": usage},
                "reason": reason,
                "cost_usd": cost,
                "latency_ms": latency_ms,
                "trace_id": item.trace_id,
            })
            if cost:
                costs.append({
                    "ticket_id": ticket.ticket_id,
                    "business_unit": ticket.business_unit,
                    "component": self.component,
                    "entry_key": key,
                    "amount_usd": cost,
                })
            accountability.append({
                "ticket_id": ticket.ticket_id,
                "event_key": attempt_key(self.component, envelope.attempt),
                "actor_type": "component",
                "actor": self.component,
                "action": action,
                "version": self.handler.version,
                "details": {**usage, "cost_usd": str(cost), "hop": hop},
            })
        observe_recorded(self.handler.name, await record_decisions(conn, decisions))
        await record_costs(conn, costs)
        await record_accountability(conn, accountability)
        stored = await self._stored(conn, work)
        return [
            publication_for(item.value, stored[_identity(item)], item.trace_headers,
                            self.handler.name)
            for item in work
        ]

    async def _stored(self, conn: AsyncConnection, work: Sequence[Work[TicketEnvelope]]
                      ) -> dict[tuple[str, int], dict[str, Any]]:
        """Stored decisions by (ticket, automation attempt): one query per attempt number in the
        batch (nearly always one)."""
        by_attempt: dict[int, dict[str, str]] = {}
        for item in work:
            by_attempt.setdefault(item.value.attempt, {})[item.value.ticket.ticket_id] = \
                attempt_key(self.decision_key, item.value.attempt)
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for attempt, keys in by_attempt.items():
            outputs = await stored_outputs(conn, self.stage, keys, keys)
            found.update({(ticket_id, attempt): output for ticket_id, output in outputs.items()})
        return found


def _identity(item: Work[TicketEnvelope]) -> tuple[str, int]:
    return item.value.ticket.ticket_id, item.value.attempt

