"""Wiring every pipeline service shares: broker, streams, the batch subscriber, health, shutdown.

Each service's `create_app()` calls these; nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from faststream import AckPolicy, FastStream, NoCast
from faststream.message import StreamMessage
from faststream.nats import ConsumerConfig, JStream, NatsBroker, PullSub
from faststream.nats.publisher.producer import NatsJSFastProducer
from faststream.specification import AsyncAPI
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_common.db.engine import create_engine
from pinworks_common.deliveries import UnfinishedSweep
from pinworks_common.health import HealthServer
from pinworks_common.ledger import Books, Publication
from pinworks_common.logs import configure_logging
from pinworks_common.metrics import Poller, StageMetrics, business_unit_label, poll_consumer_lag
from pinworks_common.nats_client import JetStreamAcks, warn_if_anonymous
from pinworks_common.pull import adopt
from pinworks_common.settings import CommonSettings
from pinworks_common.stage import (
    PreparedStageLogic,
    StageLogic,
    StageRunner,
    escalate_on_dead_letter,
)
from pinworks_common.streams import STREAM_MAX_AGE_SECONDS, declare_streams
from pinworks_common.telemetry import configure_tracing
from pinworks_contracts.messages import DeadLetter
from pinworks_contracts.subjects import (
    DEAD_LETTER_STREAM,
    dead_letter_subject,
)

log = logging.getLogger("pinworks.service")

def _fetch_raises_nats_timeouts() -> None:
    """Workaround: nats-py's pull `fetch` can raise a bare `asyncio.TimeoutError` when its
    deadline runs out between two requests, while FastStream's batch loop only catches
    `nats.errors.TimeoutError`. The escaping error kills the loop and drops the messages it had
    gathered for the batch, which then wait a whole ack-wait for redelivery. Re-raising it as the
    nats error keeps the loop, and the batch, alive."""
    from nats.errors import TimeoutError as NatsTimeoutError
    from nats.js.client import JetStreamContext

    subscription = JetStreamContext.PullSubscription
    if getattr(subscription.fetch, "_pinworks_wrapped", False):
        return
    original = subscription.fetch

    async def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        except NatsTimeoutError:
            raise
        except TimeoutError as error:
            raise NatsTimeoutError from error

    fetch._pinworks_wrapped = True  # type: ignore[attr-defined]
    subscription.fetch = fetch  # type: ignore[method-assign]


def create_broker(settings: CommonSettings, service: str) -> NatsBroker:
    _fetch_raises_nats_timeouts()
    servers = [url.strip() for url in settings.nats_url.split(",") if url.strip()]
    warn_if_anonymous(settings, settings.nats_url, f"pinworks-{service}")
    # Our logger, not FastStream's default one (which writes colour codes even into files).
    # Its "Received"/"Processed" line per batch is DEBUG: at INFO each one went through the
    # personal-data filter, twice per batch in every service; errors are still logged as such.
    return NatsBroker(servers, name=f"pinworks-{service}", max_reconnect_attempts=-1,
                      logger=logging.getLogger(f"pinworks.{service}.broker"),
                      log_level=logging.DEBUG, **settings.broker_options())


async def ensure_streams(broker: NatsBroker) -> None:
    """Declare every stream (file storage, dedup window); safe to call from every replica."""
    await declare_streams(broker.config.connection_state.stream)




PUBLISH_TIMEOUT_SECONDS = 10.0
"""How long a publication waits for JetStream's acknowledgement."""


class JetStreamPublisher:
    """Publishes through the broker's NATS connection with `Nats-Msg-Id`.

    `publish_all` sends a whole batch's publications before awaiting any acknowledgement and
    then awaits them together (`JetStreamAcks`): FastStream's `publish` waits for each
    message's acknowledgement in its own request (a reply future and timer per message, its
    middleware and command per message). Under FastStream's TestNatsBroker, whose producer
    stands in for NATS, both go through the broker's `publish`."""

    def __init__(self, broker: NatsBroker, timeout: float = PUBLISH_TIMEOUT_SECONDS) -> None:
        self.broker = broker
        self.timeout = timeout
        self._acks: JetStreamAcks | None = None

    async def __call__(self, publication: Publication) -> Any:
        return await self.broker.publish(
            publication.payload, publication.subject, headers=_headers(publication),
            stream=publication.stream, timeout=self.timeout)

    async def publish_all(self, publications: Sequence[Publication]) -> None:
        """Every publication sent, then every acknowledgement awaited; raises when one is
        refused or does not come within the timeout (the batch is then retried)."""
        if not isinstance(self.broker.config.js_producer, NatsJSFastProducer):
            await asyncio.gather(*(self(publication) for publication in publications))
            return
        if self._acks is None:
            self._acks = JetStreamAcks(self.broker.config.connection_state.connection)
        try:
            await self._acks.publish_all(
                [(publication.subject, publication.payload, publication.stream,
                  _headers(publication)) for publication in publications], self.timeout)
        except TimeoutError as error:
            raise NatsTimeoutError from error  # a NATS fault: the messages wait, never count


def _headers(publication: Publication) -> dict[str, str]:
    return {**publication.headers, "Nats-Msg-Id": publication.msg_id}


def make_publisher(broker: NatsBroker) -> JetStreamPublisher:
    return JetStreamPublisher(broker)


async def raw_batch(msg: StreamMessage[Any]) -> list[Msg]:
    """The batch's messages as they came: FastStream's own decoder `json.loads` every message and
    one it cannot parse (1,000 nested levels, a 5,000-digit number) fails the whole batch
    before pinworks sees it, again on every redelivery. The stage runner decodes each message
    alone, under its limits. The handler takes the messages as its body: a `NatsMessage`
    parameter is a context field FastStream resolves in a worker thread, a thread hand-off per
    batch in every service."""
    return cast(list[Msg], msg.raw_message)


def subscribe_stage(
    broker: NatsBroker,
    runner: StageRunner[Any],
    *,
    subject: str,
    stream: str,
    durable: str,
    settings: CommonSettings,
    description: str,
    runtime: ServiceRuntime | None = None,
) -> None:
    """Attach a durable pull consumer that hands whole batches to the stage runner; its
    metrics are labelled with the durable's name, and its lag is polled if `runtime` is given."""
    if isinstance(runner.observer, StageMetrics):
        runner.observer.consumer = durable
    if runtime is not None:
        runtime.consumers.append((stream, durable))

    async def handle(body: NoCast[list[Any]]) -> None:
        await runner.process(cast(list[Msg], body))

    subscriber = broker.subscriber(
        subject,
        decoder=raw_batch,
        stream=JStream(stream, declare=False),
        durable=durable,
        pull_sub=PullSub(
            batch_size=settings.batch_size, batch=True, timeout=settings.batch_window_seconds
        ),
        ack_policy=AckPolicy.MANUAL,
        # FastStream's pull subscriber spells its own `_INBOX.` unless told: the identity's
        # prefix, the only inbox a secured server lets it read.
        inbox_prefix=f"{settings.nats_inbox_prefix}.".encode(),
        config=ConsumerConfig(
            ack_wait=settings.ack_wait_seconds,
            # Never JetStream's own limit: a message past it is silently never delivered again
            # (no dead letter, no outcome). The runner dead-letters a message itself, after
            # PINWORKS_MAX_DELIVERIES failures or PINWORKS_MAX_UNFINISHED_DELIVERIES deliveries
            # its process died on, and waits out infrastructure faults however long they last.
            max_deliver=-1,
            max_ack_pending=max(1000, settings.batch_size * 8),
        ),
        title=f"{durable}:{subject}",
        description=description,
    )
    subscriber(handle)
    adopt(subscriber, settings.batch_size, settings.batch_window_seconds)
    _document_dead_letters(broker, runner.logic.stage)


def _document_dead_letters(broker: NatsBroker, stage: str) -> None:
    """The runner publishes dead letters itself (not through FastStream); this publisher only
    puts the channel in the AsyncAPI document, once per stage."""
    subject = dead_letter_subject(stage)
    if any(getattr(getattr(publisher, "subject", None), "broker_address", None) == subject
           for publisher in broker.publishers):
        return
    broker.publisher(
        subject, title=f"deadletter-{stage}", schema=DeadLetter,
        description=f"Messages the {stage} stage gave up on after PINWORKS_MAX_DELIVERIES "
        f"failed deliveries (default {CommonSettings.model_fields['max_deliveries'].default}) "
        "or PINWORKS_MAX_UNFINISHED_DELIVERIES deliveries begun and never finished (default "
        f"{CommonSettings.model_fields['max_unfinished_deliveries'].default}), on "
        f"stream {DEAD_LETTER_STREAM}; each is also a "
        "row in Postgres `dead_letters`, and a ticket's own is shown by `pinworks audit`.",
    )


@dataclass
class ServiceRuntime:
    """The live resources of one service, built by its composition root."""

    name: str
    settings: CommonSettings
    broker: NatsBroker
    engine: AsyncEngine
    documented_payloads: dict[str, type[BaseModel]] = field(default_factory=dict)
    consumers: list[tuple[str, str]] = field(default_factory=list)
    """(stream, durable) of each consumer the service runs: their lag is exported."""
    poller: Poller = field(default_factory=lambda: Poller(15.0))
    """Periodic reads behind gauges; services add theirs (queue depth, budgets)."""
    sweep: UnfinishedSweep = field(default_factory=lambda: UnfinishedSweep(
        CommonSettings.model_fields["unfinished_sweep_seconds"].default))
    """Deletes the mounted stages' unfinished-delivery counts their messages outlived."""

    async def ready(self) -> bool:
        if not await self.broker.ping(timeout=1.0):
            return False
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True


def mount_stage(
    runtime: ServiceRuntime,
    logic: StageLogic[Any] | PreparedStageLogic[Any],
    books: Books | None,
    *,
    subject: str,
    stream: str,
    description: str,
    payload: type[BaseModel],
    durable: str | None = None,
    escalate_dead_letters: bool = False,
) -> StageRunner[Any]:
    """Run `logic` as the durable consumer `durable` (by default the stage's name) of
    `subject`: its runner over `books` (the Postgres ledger when None, an in-memory one in
    component tests), its subscription, and `payload` as the channel's documented message.
    `escalate_dead_letters` sends a ticket the stage gave up on to a person. The consumer's lag
    is among the service's gauges; its unfinished-delivery counts are swept (`runtime.sweep`)
    once older than `stream`'s max age."""
    durable = durable or logic.stage
    runner = StageRunner(
        logic, books or runtime.engine, make_publisher(runtime.broker),
        max_deliveries=runtime.settings.max_deliveries,
        max_unfinished_deliveries=runtime.settings.max_unfinished_deliveries,
        on_dead_letter=escalate_on_dead_letter(logic.stage) if escalate_dead_letters else None,
    )
    subscribe_stage(
        runtime.broker, runner, subject=subject, stream=stream, durable=durable,
        settings=runtime.settings, description=description,
        runtime=runtime,
    )
    runtime.sweep.add(runner.unfinished, logic.stage, STREAM_MAX_AGE_SECONDS[stream])
    runtime.documented_payloads[f"{durable}:{subject}"] = payload
    return runner


def build_runtime(name: str, settings: CommonSettings) -> ServiceRuntime:
    configure_logging(name, settings.log_level)
    configure_tracing(name, settings.otlp_endpoint)
    business_unit_label.limit = settings.metrics_max_business_units
    return ServiceRuntime(
        name=name,
        settings=settings,
        broker=create_broker(settings, name),
        engine=create_engine(settings.database_url),
        poller=Poller(settings.metrics_interval_seconds),
        sweep=UnfinishedSweep(settings.unfinished_sweep_seconds),
    )


def service_app(
    runtime: ServiceRuntime,
    *,
    description: str,
    on_started: Sequence[Callable[[], Awaitable[None]]] = (),
    on_stopping: Sequence[Callable[[], Awaitable[None]]] = (),
) -> FastStream:
    """A FastStream app that declares streams, serves health and disposes the engine on exit."""
    health = HealthServer(runtime.settings.health_port, runtime.ready,
                          host=runtime.settings.health_host)

    async def declare_streams() -> None:
        await runtime.broker.connect()
        await ensure_streams(runtime.broker)

    async def start_health() -> None:
        await health.start()
        for hook in on_started:
            await hook()
        if runtime.consumers:
            async def consumer_lag() -> None:
                await poll_consumer_lag(runtime.broker.config.connection_state.stream,
                                        runtime.consumers)

            runtime.poller.add("consumer_lag", consumer_lag)
        await runtime.poller.start()
        await runtime.sweep.start()
        log.info("pinworks-%s ready (health and /metrics on :%d)", runtime.name,
                 runtime.settings.health_port)

    async def stop() -> None:
        await runtime.sweep.stop()
        await runtime.poller.stop()
        for hook in on_stopping:
            await hook()
        await health.stop()
        await runtime.engine.dispose()

    app = FastStream(
        runtime.broker,
        specification=AsyncAPI(
            title=f"pinworks-{runtime.name}", version="0.1.0", description=description
        ),
        after_startup=[start_health],
        on_shutdown=[stop],
        logger=logging.getLogger(f"pinworks.{runtime.name}.app"),
    )
    app.on_startup(declare_streams)
    setattr(app, "pinworks_payloads", runtime.documented_payloads)  # noqa: B010 - read by asyncapi
    return app


YOUNG_COLLECTION_THRESHOLD = 20_000
"""Net container allocations between two collections of the youngest generation (CPython's
default is 700). A batch's messages, rows and models live through many collections at 700, are
promoted and later die old, so the old generations filled with them and were collected again
and again: measured with `gc.callbacks` in `pinworks bench --private --count 2000`, the router
spent 0.125 ms of its 0.55 CPU-ms per ticket in the collector. Nearly all of a batch's garbage
is freed by reference counting; at 20,000 the collector runs a few times a run, not hundreds."""


def settle_heap() -> None:
    """Once the service is up: collect what start-up left, then freeze the rest (modules,
    models, the policy, the framework's schemas) out of the collector's view for good, so a
    collection of the old generation no longer walks hundreds of thousands of objects that
    live as long as the process; and collect the young generation less often (see
    `YOUNG_COLLECTION_THRESHOLD`). Cyclic garbage made later is still collected. Only a
    service process does this (`run_service`), never a test process that starts apps."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


EXIT_CHECK_SECONDS = 1.0
"""How often FastStream's run loop looks whether SIGINT/SIGTERM asked it to stop. Its default,
0.1 s, woke every service ten times a second, busy or idle (about 2 ms of CPU a second each on
the 2-core bench machine); a stop now begins within a second of the signal."""


def run_service(factory: Callable[[], FastStream]) -> None:
    """Entry point of `python -m pinworks_<service>`: FastStream handles SIGINT/SIGTERM; the
    heap is settled once the app has started (`settle_heap`)."""
    app = factory()

    async def settle() -> None:
        settle_heap()

    app.after_startup(settle)
    asyncio.run(app.run(sleep_time=EXIT_CHECK_SECONDS))
