"""The specialist stage: one durable consumer per handler; drafts go to the verifier, declines go
down the route's fallback chain (or to a person).

A batch's handler calls run concurrently (at most `concurrency` at once) and never raise: an
exception or a call past `timeout_seconds` becomes a decline with its reason, so a ticket always
moves on and a consumer never crashes. Tickets already decided (a redelivery) are not handled
again: the first stored decision is republished. While calls run, the batch's messages are kept
in progress so JetStream does not redeliver them mid-call, and no database connection is held:
the calls happen before the transaction that records them opens (a model can take minutes).
A local handler (templates, the help centre: `LocalHandler`) decides at once, so its calls run
inside that transaction, after the same redelivery check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from pinworks_common.ledger import Books, Ledger, keys, records
from pinworks_common.stage import Commit, Delivery, Work, decode_model
from pinworks_contracts.messages import Draft, TicketEnvelope
from pinworks_contracts.subjects import Stage
from pinworks_specialists.fallback import current_hops, publication_for, settle
from pinworks_specialists.handlers import Declined, Handler, LocalHandler
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
        return _failed(handler, envelope, error)


def call_now(handler: LocalHandler, envelope: TicketEnvelope) -> tuple[Draft | Declined, float]:
    """A local handler's call and its latency (ms); an error becomes a decline."""
    started = time.perf_counter()
    try:
        result = handler.handle_now(envelope)
    except Exception as error:  # noqa: BLE001 - a handler bug must not stall the ticket
        result = _failed(handler, envelope, error)
    return result, (time.perf_counter() - started) * 1000


def _failed(handler: Handler, envelope: TicketEnvelope, error: Exception) -> Declined:
    log.exception("%s failed on %s", handler.name, envelope.ticket.ticket_id)
    return Declined(f"{handler.name} failed: {type(error).__name__}: {error}", kind="error")


class SpecialistStage:
    stage = Stage.SPECIALIST.value

    def __init__(self, handler: Handler, price: Price | None = None, *, concurrency: int = 16,
                 timeout_seconds: float = 120.0, heartbeat_seconds: float = 10.0) -> None:
        self.handler = handler
        self.price = price or Price()
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

    def ref(self, envelope: TicketEnvelope) -> records.DecisionRef:
        """The handler's decision for the ticket's current automation attempt."""
        return records.DecisionRef(envelope.ticket.ticket_id, self.stage,
                           keys.draft(self.handler.name, envelope.attempt))

    async def prepare(self, books: Books, work: Sequence[Work[TicketEnvelope]]) -> Commit:
        """Call the handler for every ticket not yet decided, with no transaction open while
        the calls run; the returned body hands the results to the runner's transaction. A
        local handler is called inside that transaction instead (it holds it for well under a
        millisecond a ticket), which saves the batch a connection and a transaction of its own
        for the redelivery check."""
        handler = self.handler
        if isinstance(handler, LocalHandler):
            async def decide_now(ledger: Ledger) -> records.Entries:
                todo = await ledger.undecided(work, lambda item: self.ref(item.value))
                results = [call_now(handler, item.value) for item in todo]
                observe_calls(handler.name, [result for result, _ in results])
                return self._entries(work, todo, results)

            return decide_now
        async with books.reading() as ledger:
            todo = await ledger.undecided(work, lambda item: self.ref(item.value))
        results = await self._run_all(todo) if todo else []
        observe_calls(handler.name, [result for result, _ in results])

        async def commit(ledger: Ledger) -> records.Entries:
            return self._entries(work, todo, results)

        return commit

    def _entries(self, work: Sequence[Work[TicketEnvelope]], todo: Sequence[Work[TicketEnvelope]],
                 results: Sequence[tuple[Draft | Declined, float]]) -> records.Entries:
        """The records of the calls made, and every ticket's hand-off from its stored decision."""
        entries = records.Entries(observers=[self._observe])
        for item, (result, latency_ms) in zip(todo, results, strict=True):
            entries.extend(self._records(item, result, latency_ms))
        entries.handoffs = [records.HandOff(self.ref(item.value), partial(self._hand_off, item))
                            for item in work]
        return entries

    def _records(self, item: Work[TicketEnvelope], result: Draft | Declined,
                 latency_ms: float) -> records.Entries:
        """Decision, cost and accountability of one call (a ticket another delivery recorded
        meanwhile keeps its first record: the ledger hands it on from that one)."""
        envelope, ticket = item.value, item.value.ticket
        output = settle(envelope, self.handler.name, self.handler.version, result)
        cost, details = result.cost_usd, result.details
        usage = {
            "input_tokens": int(details.get("input_tokens", 0) or 0),
            "output_tokens": int(details.get("output_tokens", 0) or 0),
            "tokens_estimated": bool(details.get("tokens_estimated", False)),
        }
        key = self.ref(envelope).key
        earlier = current_hops(envelope)
        hop = len(earlier)
        if isinstance(result, Draft):
            reason, action = "drafted an answer", "draft"
        else:
            reason = f"{result.kind}: {result.reason}; next: {output['next']}"
            action = f"{result.kind}, pass to {output['next']}"
        decision = records.Decision(
            ticket.ticket_id, self.stage, key, self.component, self.handler.version,
            inputs={
                "intent": envelope.classification.intent if envelope.classification else None,
                "route_rule": envelope.route.rule if envelope.route else None,
                "hop": hop,
                "after": [a.handler for a in earlier],
                "automation_attempt": envelope.attempt,
                "price": self.price.model_dump(mode="json"),
            },
            output={**output, "usage": usage}, reason=reason, cost_usd=cost,
            latency_ms=latency_ms, trace_id=item.trace_id,
        )
        return records.Entries(
            decisions=[decision],
            costs=[records.CostEntry(ticket.ticket_id, ticket.business_unit, self.component, key, cost)]
            if cost else [],
            accountability=[records.AccountabilityEntry(
                ticket.ticket_id, keys.event(self.component, envelope.attempt), self.component,
                action, self.handler.version, {**usage, "cost_usd": str(cost), "hop": hop})],
        )

    def _hand_off(self, item: Work[TicketEnvelope], stored: dict[str, Any]) -> records.Publication:
        return publication_for(item.value, stored, item.trace_headers, self.handler.name)

    def _observe(self, recorded: records.Recorded) -> None:
        observe_recorded(self.handler.name, [d.row() for d in recorded.new_decisions])
