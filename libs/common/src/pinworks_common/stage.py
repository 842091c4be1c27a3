"""The batch stage runner every pipeline service uses.

One pull batch is decoded, applied in ONE database transaction, its publications sent with
stable `Nats-Msg-Id`s, and only then acknowledged. A batch that fails is retried message by
message so one bad message cannot hold up the others; a message that keeps failing goes to the
dead-letter subject (recorded in Postgres) after failing a bounded number of times on its own
merits. Infrastructure faults (database or NATS unreachable, starting up, overloaded, a lost
serialization race; see `faults`) never count: the message is redelivered until they pass.
Every message is decoded under the limits of `jsonlimits`, here and never by the framework.

A stage decides and returns typed records (`ledger.Entries`); the ledger records them once in
the batch's transaction and builds the publications from what was stored, so a redelivery
republishes the first result under the same `Nats-Msg-Id` and never double-counts.

A stage whose work is slow (a model behind HTTP) does it in `prepare`, before the transaction
opens, so no database connection is held, let alone a transaction left open, while it waits.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.deliveries import (
    MemoryUnfinishedDeliveries,
    PostgresUnfinishedDeliveries,
    UnfinishedDeliveries,
)
from pinworks_common.faults import infrastructure_fault
from pinworks_common.ledger.book import Books, Ledger
from pinworks_common.ledger.postgres import PostgresBooks
from pinworks_common.ledger.records import Entries, Publication, Recorded, escalation_publication
from pinworks_common.logs import log_fields
from pinworks_common.metrics import StageMetrics, StageObserver, until_commit
from pinworks_common.settings import CommonSettings
from pinworks_common.telemetry import inject_headers, start_span, trace_id_of
from pinworks_contracts.jsonlimits import (
    INTERNAL_LIMITS,
    JsonLimitError,
    check_limits,
    loads_limited,
    storable_text,
    top_level_strings,
)
from pinworks_contracts.messages import (
    TICKET_ID_PATTERN,
    DeadLetter,
    EscalationRequest,
    TicketEnvelope,
)
from pinworks_contracts.subjects import DEAD_LETTER_STREAM, dead_letter_message_id, dead_letter_subject

log = logging.getLogger("pinworks.stage")

T = TypeVar("T")
PAYLOAD_EXCERPT_CHARS = 4096
REMEMBERED_FAILURES = 10_000
DEFAULT_MAX_UNFINISHED_DELIVERIES: int = CommonSettings.model_fields[
    "max_unfinished_deliveries"].default
MIN_UNFINISHED_FOR_GROUPS = 3
"""The least `max_unfinished_deliveries` at which suspects never counted are taken up as one
batch: a group that died leaves each member counted once, which with the delivery that made it
a suspect is 2 unfinished deliveries, so below 3 an innocent member would be dead-lettered for
its batch-mate's death; there each suspect is taken up alone from the start."""


@dataclass(frozen=True)
class Delivery:
    """One JetStream message as the stage sees it."""

    message: Msg

    @property
    def data(self) -> bytes:
        return self.message.data

    @property
    def subject(self) -> str:
        return self.message.subject

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.message.headers or {})

    @property
    def stream_seq(self) -> int:
        return int(self.message.metadata.sequence.stream)

    @property
    def num_delivered(self) -> int:
        return int(self.message.metadata.num_delivered)

    def excerpt(self) -> str:
        text = self.data[:PAYLOAD_EXCERPT_CHARS].decode("utf-8", errors="replace")
        return text.replace("\x00", "\\x00")


@dataclass
class Work(Generic[T]):
    """A decoded message inside its span; `trace_headers` carry the span to the next stage."""

    delivery: Delivery
    value: T
    span: Span

    @cached_property
    def trace_id(self) -> str:
        return trace_id_of(self.span)

    @property
    def trace_headers(self) -> dict[str, str]:
        return dict(self._trace_headers)  # a copy: a publication may add its own headers

    @cached_property
    def _trace_headers(self) -> dict[str, str]:
        return inject_headers(self.span)


class PoisonMessage(ValueError):
    """A message that can never be processed (undecodable internal message)."""


class StageLogic(Protocol[T]):
    stage: str

    def decode(self, delivery: Delivery) -> T:
        """Turn the raw message into the stage's input; raise PoisonMessage if impossible."""

    async def apply(self, ledger: Ledger, work: Sequence[Work[T]]) -> Entries:
        """Decide the batch (reading what `ledger` stored); return what to record and hand off."""


Commit = Callable[[Ledger], Awaitable[Entries]]


@runtime_checkable
class PreparedStageLogic(Protocol[T]):
    """A stage with slow work: `prepare` does it with no transaction open (it may read through
    `books.reading()`) and returns the transaction's body, which returns the records."""

    stage: str

    def decode(self, delivery: Delivery) -> T:
        """Turn the raw message into the stage's input; raise PoisonMessage if impossible."""

    async def prepare(self, books: Books, work: Sequence[Work[T]]) -> Commit:
        """Do the batch's slow work outside any transaction; return what to run inside one."""


async def record_batch(logic: StageLogic[T], ledger: Ledger, work: Sequence[Work[T]]
                       ) -> list[Publication]:
    """Apply a stage to a batch and record its entries in `ledger`; return what to publish."""
    recorded: Recorded = await ledger.record(await logic.apply(ledger, work))
    return recorded.publications


Publisher = Callable[[Publication], Awaitable[Any]]


@runtime_checkable
class BatchPublisher(Protocol):
    """A publisher that sends a batch's publications at once and awaits their acknowledgements
    together (`service.JetStreamPublisher`); it raises when any is not acknowledged."""

    async def __call__(self, publication: Publication) -> Any: ...

    async def publish_all(self, publications: Sequence[Publication]) -> None: ...


class StageRunner(Generic[T]):
    def __init__(
        self,
        logic: StageLogic[T] | PreparedStageLogic[T],
        books: Books | AsyncEngine,
        publish: Publisher | BatchPublisher,
        *,
        max_deliveries: int,
        max_unfinished_deliveries: int = DEFAULT_MAX_UNFINISHED_DELIVERIES,
        on_dead_letter: Callable[[Delivery, str], Sequence[Publication]] | None = None,
        observer: StageObserver | None = None,
        unfinished: UnfinishedDeliveries | None = None,
    ) -> None:
        self.logic = logic
        self.books: Books = PostgresBooks(books) if isinstance(books, AsyncEngine) else books
        if unfinished is None:
            unfinished = (PostgresUnfinishedDeliveries(self.books.engine)
                          if isinstance(self.books, PostgresBooks)
                          else MemoryUnfinishedDeliveries())
        self.unfinished = unfinished
        self.max_unfinished_deliveries = max_unfinished_deliveries
        self.publish = publish
        self.publish_all = (publish.publish_all if isinstance(publish, BatchPublisher)
                            else partial(_publish_each, publish))
        self.max_deliveries = max_deliveries
        self.on_dead_letter = on_dead_letter
        self.tracer = trace.get_tracer(f"pinworks.{logic.stage}")
        self.span_name = f"pinworks.{logic.stage}"
        self.observer: StageObserver = observer or StageMetrics(logic.stage)
        self._own_failures: OrderedDict[int, int] = OrderedDict()
        self._settled: OrderedDict[int, int] = OrderedDict()
        """Deliveries of each message this process settled itself with a nak, most recent
        messages only (a restart forgets them, which only makes a message a suspect)."""
        self._suspects: OrderedDict[int, int] = OrderedDict()
        """Messages this process took up as suspects and has not finished: they stay suspects
        (a nak of theirs never puts one back into a batch it might take down)."""

    async def process(self, messages: Sequence[Msg]) -> None:
        """The batch's messages; one delivered again without this process having settled its
        earlier delivery (a suspect: its process may have died on it) is taken up alone after
        the others (see `pinworks_common.deliveries`)."""
        started = time.perf_counter()
        self.observer.batch(len(messages))
        fresh: list[Delivery] = []
        suspects: list[Delivery] = []
        for message in messages:
            delivery = Delivery(message)
            (suspects if self._unsettled(delivery) else fresh).append(delivery)
        if fresh:
            await self._process_batch(fresh, started)
        if suspects:
            await self._process_suspects(suspects, started)
        log.debug("%s: %d messages in %.1f ms", self.logic.stage, len(messages),
                  (time.perf_counter() - started) * 1000)

    def _unsettled(self, delivery: Delivery) -> bool:
        """Whether an earlier delivery of the message ended without this process settling it."""
        return (delivery.stream_seq in self._suspects
                or delivery.num_delivered - 1 > self._settled.get(delivery.stream_seq, 0))

    def _decoded(self, delivery: Delivery) -> Work[T] | tuple[Delivery, Span, str]:
        span = start_span(self.tracer, self.span_name, delivery.message.headers, {
            "messaging.system": "nats",
            "messaging.destination.name": delivery.subject,
            "pinworks.stream_seq": delivery.stream_seq,
            "pinworks.deliveries": delivery.num_delivered,
        })
        try:
            return Work(delivery, self.logic.decode(delivery), span)
        except Exception as error:  # noqa: BLE001 - any decode failure is poison
            return delivery, span, f"{type(error).__name__}: {error}"

    async def _process_batch(self, deliveries: Sequence[Delivery], started: float) -> set[int]:
        """The stream sequences of the messages done with (acknowledged or dead-lettered)."""
        works: list[Work[T]] = []
        poison: list[tuple[Delivery, Span, str]] = []
        finished: set[int] = set()
        for delivery in deliveries:
            decoded = self._decoded(delivery)
            if isinstance(decoded, Work):
                works.append(decoded)
            else:
                poison.append(decoded)
        try:
            if works:
                await self._commit_and_publish(works)
                for work in works:  # each ack only queues a few bytes for nats-py's flusher
                    await work.delivery.message.ack()
                self.observer.handled(len(works), time.perf_counter() - started)
                finished.update(work.delivery.stream_seq for work in works)
        except Exception as batch_error:  # noqa: BLE001
            self.observer.batch_fallback()
            log.warning("%s: batch of %d failed (%r); retrying one by one",
                        self.logic.stage, len(works), batch_error)
            for work in works:
                if await self._process_alone(work, started):
                    finished.add(work.delivery.stream_seq)
        for delivery, span, reason in poison:
            if await self._dead_letter(delivery, reason):
                finished.add(delivery.stream_seq)
            span.set_status(Status(StatusCode.ERROR, reason))
        for work in works:
            work.span.end()
        for _, span, _ in poison:
            span.end()
        return finished

    async def _process_suspects(self, suspects: Sequence[Delivery], started: float) -> None:
        """Suspects never counted yet (a restart's: every message the dead process held) are
        counted together in one statement, committed, and processed as one batch
        (`_process_group`); each suspect counted before (it, or a group it was in, died in
        hand) is taken up alone, the least-often begun first (a message that killed its process
        is begun again only after the others are through): dead-lettered before it is processed
        once begun and left unfinished `max_unfinished_deliveries` times (counting the delivery
        that made it a suspect), else counted as begun, committed, then processed."""
        stage = self.logic.stage
        for delivery in suspects:
            _count(self._suspects, delivery.stream_seq)
        try:
            begun = await self.unfinished.counts(stage, [d.stream_seq for d in suspects])
        except Exception as error:  # noqa: BLE001 - never the messages' fault
            for delivery in suspects:
                await self._wait_for_count(delivery, error)
            return
        alone = sorted(suspects, key=lambda d: (begun.get(d.stream_seq, 0), d.stream_seq))
        if self.max_unfinished_deliveries >= MIN_UNFINISHED_FOR_GROUPS:
            group = [d for d in alone if not begun.get(d.stream_seq)]
            alone = [d for d in alone if begun.get(d.stream_seq)]
            if group:
                await self._process_group(group, started)
        for delivery in alone:
            unfinished = begun.get(delivery.stream_seq, 0) + 1
            if unfinished >= self.max_unfinished_deliveries:
                reason = (f"begun {unfinished} times and never finished (its process died or "
                          f"its ack wait ran out each time; PINWORKS_MAX_UNFINISHED_DELIVERIES "
                          f"is {self.max_unfinished_deliveries})")
                if await self._dead_letter(delivery, reason):
                    await self._forget([delivery])
                continue
            try:
                await self.unfinished.begin(stage, [delivery.stream_seq])
            except Exception as error:  # noqa: BLE001 - never the message's fault
                await self._wait_for_count(delivery, error)
                continue
            decoded = self._decoded(delivery)
            if isinstance(decoded, Work):
                finished = await self._process_alone(decoded, started)
                decoded.span.end()
            else:
                finished = await self._dead_letter(decoded[0], decoded[2])
                decoded[1].set_status(Status(StatusCode.ERROR, decoded[2]))
                decoded[1].end()
            if finished:
                await self._forget([delivery])
            else:
                await self._take_back([delivery])

    async def _process_group(self, group: Sequence[Delivery], started: float) -> None:
        """Suspects never counted, counted as begun together (committed) and processed as one
        batch: if the process dies on the batch, each comes back counted once, to be taken up
        alone; one its process dies on every time is isolated so on its next delivery and
        counted alone from then on (it is dead-lettered after as many deaths as if it had been
        taken up alone from the start)."""
        try:
            await self.unfinished.begin(self.logic.stage, [d.stream_seq for d in group])
        except Exception as error:  # noqa: BLE001 - never the messages' fault
            for delivery in group:
                await self._wait_for_count(delivery, error)
            return
        finished = await self._process_batch(group, started)
        await self._forget([d for d in group if d.stream_seq in finished])
        await self._take_back([d for d in group if d.stream_seq not in finished])

    async def _wait_for_count(self, delivery: Delivery, error: BaseException) -> None:
        """The count could not be read or written: the message waits, as for an infrastructure
        fault, and is never charged for it."""
        delay = _backoff(delivery)
        self.observer.failed(retried=True)
        log.warning("%s: seq %d waits: its unfinished deliveries could not be counted (%r), "
                    "retry in %.0fs", self.logic.stage, delivery.stream_seq, error, delay,
                    extra=_log_fields(delivery))
        await self._nak(delivery, delay)

    async def _forget(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        for delivery in deliveries:
            self._suspects.pop(delivery.stream_seq, None)
        try:
            await self.unfinished.forget(self.logic.stage, [d.stream_seq for d in deliveries])
        except Exception as error:  # noqa: BLE001 - a stale row only outlives its message
            log.warning("%s: %s finished; their unfinished counts stay (%r)", self.logic.stage,
                        _seqs(deliveries), error)

    async def _take_back(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        try:
            await self.unfinished.take_back(self.logic.stage, [d.stream_seq for d in deliveries])
        except Exception as error:  # noqa: BLE001 - the count is then one too high
            log.warning("%s: %s settled; their unfinished counts stay one higher (%r)",
                        self.logic.stage, _seqs(deliveries), error)

    async def _commit_and_publish(self, works: Sequence[Work[T]]) -> None:
        logic = self.logic
        if isinstance(logic, PreparedStageLogic):
            commit = await logic.prepare(self.books, works)
        else:
            async def commit(ledger: Ledger) -> Entries:
                return await logic.apply(ledger, works)
        with until_commit():
            async with self.books.transaction() as ledger:
                recorded = await ledger.record(await commit(ledger))
        if recorded.publications:
            await self.publish_all(recorded.publications)

    async def _process_alone(self, work: Work[T], started: float) -> bool:
        """Whether the message is done with (acknowledged or dead-lettered)."""
        try:
            await self._commit_and_publish([work])
            await work.delivery.message.ack()
            self.observer.handled(1, time.perf_counter() - started)
            return True
        except Exception as error:  # noqa: BLE001
            work.span.record_exception(error)
            return await self._fail(work.delivery, error)

    async def _fail(self, delivery: Delivery, error: BaseException) -> bool:
        reason = f"{type(error).__name__}: {error}"
        delay = _backoff(delivery)
        fault = infrastructure_fault(error)
        if fault is not None:
            self.observer.failed(retried=True)
            log.warning("%s: seq %d waits out an infrastructure fault (%s), retry in %.0fs: %s",
                        self.logic.stage, delivery.stream_seq, fault, delay, reason,
                        extra=_log_fields(delivery))
            await self._nak(delivery, delay)
            return False
        failures = _count(self._own_failures, delivery.stream_seq)
        self.observer.failed(retried=failures < self.max_deliveries)
        if failures < self.max_deliveries:
            log.warning("%s: seq %d failed (%d of %d), retry in %.0fs: %s", self.logic.stage,
                        delivery.stream_seq, failures, self.max_deliveries, delay, reason,
                        extra=_log_fields(delivery))
            await self._nak(delivery, delay)
            return False
        self._own_failures.pop(delivery.stream_seq, None)
        return await self._dead_letter(delivery, reason)

    async def _nak(self, delivery: Delivery, delay: float) -> None:
        """Ask for redelivery, remembering that this process settled this delivery."""
        _count(self._settled, delivery.stream_seq)
        await _nak(delivery, delay)

    async def _dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Record and publish the dead letter, then ack (True); if that fails, redeliver later
        (False)."""
        letter = DeadLetter(
            stage=self.logic.stage,
            subject=delivery.subject,
            stream_sequence=delivery.stream_seq,
            deliveries=delivery.num_delivered,
            error=storable_text(reason[:4000]),
            ticket_id=_ticket_id_hint(delivery.data),
            payload_excerpt=delivery.excerpt(),
        )
        log.error("%s: dead-lettering seq %d after %d deliveries: %s", self.logic.stage,
                  delivery.stream_seq, delivery.num_delivered, reason,
                  extra=_log_fields(delivery))
        try:
            async with self.books.transaction() as ledger:
                await ledger.dead_letter(letter)
            publications = [
                Publication(
                    subject=dead_letter_subject(self.logic.stage),
                    payload=letter.model_dump_json().encode(),
                    msg_id=dead_letter_message_id(self.logic.stage, delivery.stream_seq),
                    stream=DEAD_LETTER_STREAM,
                )
            ]
            if self.on_dead_letter is not None:
                publications.extend(self.on_dead_letter(delivery, reason))
            await self.publish_all(publications)
            await delivery.message.ack()
            self.observer.dead_lettered()
            return True
        except Exception as error:  # noqa: BLE001
            log.error("%s: could not dead-letter seq %d (%r); will retry",
                      self.logic.stage, delivery.stream_seq, error, extra=_log_fields(delivery))
            await self._nak(delivery, 5.0)
            return False


def _count(counts: OrderedDict[int, int], stream_seq: int) -> int:
    """One more for `stream_seq`, remembered for the most recent messages only."""
    count = counts.pop(stream_seq, 0) + 1
    counts[stream_seq] = count
    while len(counts) > REMEMBERED_FAILURES:
        counts.popitem(last=False)
    return count


def _seqs(deliveries: Sequence[Delivery]) -> str:
    return "seq " + ", ".join(str(d.stream_seq) for d in deliveries)


def _backoff(delivery: Delivery) -> float:
    return min(2.0 ** min(delivery.num_delivered, 5), 30.0)


async def _publish_each(publish: Publisher, publications: Sequence[Publication]) -> None:
    await asyncio.gather(*(publish(publication) for publication in publications))


async def _nak(delivery: Delivery, delay: float) -> None:
    """Ask for redelivery; if NATS is gone the ack-wait redelivers it anyway."""
    try:
        await delivery.message.nak(delay=delay)
    except Exception as error:  # noqa: BLE001
        log.warning("nak of seq %d failed (%r); it comes back after the ack wait",
                    delivery.stream_seq, error)


def _log_fields(delivery: Delivery) -> dict[str, str]:
    """The ticket and trace a log line about this delivery names (see pinworks_common.logs)."""
    return log_fields(ticket_id=_ticket_id_hint(delivery.data), headers=delivery.headers)


def _ticket_id_hint(data: bytes) -> str | None:
    try:
        decoded = loads_limited(data, INTERNAL_LIMITS)
    except JsonLimitError:
        found = top_level_strings(data, frozenset({"ticket_id"})).get("ticket_id")
        return found if found and re.fullmatch(TICKET_ID_PATTERN, found) else None
    if not isinstance(decoded, dict):
        return None
    for candidate in (decoded, decoded.get("envelope", {}), decoded.get("ticket", {})):
        if isinstance(candidate, dict):
            ticket = candidate.get("ticket", candidate)
            if isinstance(ticket, dict) and isinstance(ticket.get("ticket_id"), str):
                return str(ticket["ticket_id"])[:128]
    return None


def decode_model(model: Any, delivery: Delivery) -> Any:
    """Decode an internal message under `INTERNAL_LIMITS`; one that does not fit them or its
    contract can never succeed."""
    try:
        check_limits(delivery.data, INTERNAL_LIMITS)
        return model.model_validate_json(delivery.data)
    except (JsonLimitError, ValidationError) as error:
        raise PoisonMessage(f"not a valid {model.__name__}: {error}") from None


def escalate_on_dead_letter(stage: str) -> Callable[[Delivery, str], list[Publication]]:
    """A ticket whose message a stage gave up on still reaches a person, with the error:
    an accepted ticket always gets an outcome."""
    def escalate(delivery: Delivery, reason: str) -> list[Publication]:
        try:
            check_limits(delivery.data, INTERNAL_LIMITS)
            envelope = TicketEnvelope.model_validate_json(delivery.data)
        except ValueError:
            return []
        request = EscalationRequest(
            envelope=envelope, source_stage=stage,
            reasons=[f"{stage} failed after {delivery.num_delivered} deliveries: {reason}"],
        )
        trace_headers = {k: v for k, v in delivery.headers.items()
                         if k in ("traceparent", "tracestate")}
        return [escalation_publication(request, trace_headers)]

    return escalate
