"""How every pinworks NATS client authenticates: services, the CLI, compose's one-shot
containers and the tests, in one place.

The credentials follow the nats CLI's variables: `NATS_CREDS` (a JWT creds file), `NATS_NKEY`
(an nkey seed file), `NATS_USER` + `NATS_PASSWORD` (development only), the first of these set
winning in that order. TLS: `NATS_TLS_CA` (verify the server against this CA) and
`NATS_TLS_CERT` + `NATS_TLS_KEY` (a client certificate) are pinworks' names; the nats CLI's own
`NATS_CA` / `NATS_CERT` / `NATS_KEY` are read as the same settings. A CA or a client certificate
turns TLS on (a `tls://` URL does too, in nats-py). `NATS_INBOX_PREFIX` names the identity's own
reply subjects (e.g. `_INBOX_support`: a secured server lets each identity subscribe only on its
own). With none of the credentials set the client connects anonymously, which a secured server
refuses; against an open development server it works, and the services and `pinworks run` log a
loud warning (`warn_if_anonymous`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("pinworks.nats")

DEFAULT_INBOX_PREFIX = "_INBOX"


def _not_tls_eof_noise(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("returning true from eof_received()")


def silence_tls_eof_warning() -> None:
    """Drop asyncio's "returning true from eof_received() has no effect when using ssl": nats-py
    upgrades its plain stream to TLS after the server's INFO, so the stream protocol still
    answers end-of-file as a plain one would, and asyncio warns each time a TLS connection
    closes (every CLI command against `make run` printed it). Harmless, and only that line."""
    asyncio_log = logging.getLogger("asyncio")
    if _not_tls_eof_noise not in asyncio_log.filters:
        asyncio_log.addFilter(_not_tls_eof_noise)


class NatsClientSettings(BaseSettings):
    """Credentials and TLS of a NATS client, from the nats CLI's environment variables."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", use_attribute_docstrings=True)

    nats_creds: Path | None = Field(None, validation_alias="NATS_CREDS")
    """A creds file (user JWT and nkey seed) for decentralised JWT authentication."""
    nats_nkey: Path | None = Field(None, validation_alias="NATS_NKEY")
    """A file holding this identity's nkey seed (`SU...`), for nkey authentication."""
    nats_user: str | None = Field(None, validation_alias="NATS_USER")
    """User name for password authentication (development servers only)."""
    nats_password: str | None = Field(None, validation_alias="NATS_PASSWORD")
    """Password for `NATS_USER`."""
    nats_tls_ca: Path | None = Field(None, validation_alias=AliasChoices("NATS_TLS_CA", "NATS_CA"))
    """CA certificate (PEM) the server's certificate must chain to (`NATS_CA` is the nats CLI's
    own name); TLS is on when it or a client certificate is set."""
    nats_tls_cert: Path | None = Field(None, validation_alias=AliasChoices("NATS_TLS_CERT",
                                                                            "NATS_CERT"))
    """Client certificate (PEM), when the server asks for one."""
    nats_tls_key: Path | None = Field(None, validation_alias=AliasChoices("NATS_TLS_KEY",
                                                                           "NATS_KEY"))
    """Private key (PEM) of the client certificate."""
    nats_inbox_prefix: str = Field(DEFAULT_INBOX_PREFIX, validation_alias="NATS_INBOX_PREFIX")
    """Prefix of this client's reply subjects; a secured server allows only the identity's own."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NatsClientSettings:
        """From `environ` when given (only its NATS_* entries), else from the process
        environment."""
        if environ is None:
            return cls()
        fields = {}
        for info in cls.model_fields.values():
            alias = info.validation_alias
            for name in alias.choices if isinstance(alias, AliasChoices) else [alias]:
                if isinstance(name, str) and name in environ:
                    fields[name] = environ[name]
        return cls.model_validate(fields)

    @property
    def authenticated(self) -> bool:
        return bool(self.nats_creds or self.nats_nkey or self.nats_user)

    @property
    def method(self) -> str:
        """How this client authenticates, for logs (never the secret itself)."""
        if self.nats_creds:
            return f"creds file {self.nats_creds}"
        if self.nats_nkey:
            return f"nkey seed {self.nats_nkey}"
        if self.nats_user:
            return f"user {self.nats_user} (password)"
        return "anonymous"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A context that verifies the server (against `NATS_TLS_CA`, else the system CAs), with
        the client certificate when one is configured; None without any TLS variable."""
        if not (self.nats_tls_ca or self.nats_tls_cert):
            return None
        silence_tls_eof_warning()
        context = ssl.create_default_context(
            cafile=str(self.nats_tls_ca) if self.nats_tls_ca else None)
        if self.nats_tls_cert:
            context.load_cert_chain(str(self.nats_tls_cert),
                                    str(self.nats_tls_key) if self.nats_tls_key else None)
        return context

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for `nats.connect` (and, through `broker_options`, FastStream)."""
        options: dict[str, Any] = {"inbox_prefix": self.nats_inbox_prefix}
        if self.nats_creds:
            options["user_credentials"] = str(self.nats_creds)
        elif self.nats_nkey:
            options["nkeys_seed"] = str(self.nats_nkey)
        elif self.nats_user:
            options["user"], options["password"] = self.nats_user, self.nats_password or ""
        if (context := self.ssl_context()) is not None:
            options["tls"] = context
        return options

    def broker_options(self) -> dict[str, Any]:
        """Keyword arguments for FastStream's `NatsBroker` (it takes TLS and passwords as
        `security=`)."""
        from faststream.nats.security import (
            NatsCredentials,
            NatsNKey,
            NatsSecurity,
            NatsUserPassword,
        )

        context = self.ssl_context()
        security: NatsSecurity | None
        if self.nats_creds:
            security = NatsCredentials.from_file(self.nats_creds, ssl_context=context)
        elif self.nats_nkey:
            security = NatsNKey.from_file(self.nats_nkey, ssl_context=context)
        elif self.nats_user:
            security = NatsUserPassword(self.nats_user, self.nats_password or "",
                                        ssl_context=context)
        else:
            security = NatsSecurity(ssl_context=context) if context is not None else None
        options: dict[str, Any] = {"inbox_prefix": self.nats_inbox_prefix}
        if security is not None:
            options["security"] = security
        return options


def connect_options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`nats.connect` keyword arguments from the NATS_* variables of `environ` (default: the
    process environment)."""
    return NatsClientSettings.from_env(environ).connect_options()


def warn_if_anonymous(settings: NatsClientSettings, url: str, who: str) -> bool:
    """Log a loud warning when `who` is about to connect to `url` without credentials; True when
    it did."""
    if settings.authenticated or any(urlsplit(u.strip()).username for u in url.split(",")):
        log.info("%s authenticates to NATS with %s", who, settings.method)
        return False
    log.warning(
        "!!! %s connects to NATS at %s WITHOUT CREDENTIALS: anyone who can reach that server can "
        "forge tickets, outcomes and policies. Development only; set NATS_NKEY or NATS_CREDS "
        "(see the README's security model). !!!", who, url)
    return True


async def ensure_platform_consumer(js: Any, platform: str) -> None:
    """The durable pull consumer through which support platform `platform` reads its own
    outcomes, `tickets.outcome.*.<platform>` (an operator's job: the platform's identity may read
    and acknowledge it, not create it; declaring it again moves an older consumer's filter)."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from pinworks_contracts.identities import platform_consumer
    from pinworks_contracts.subjects import OUTCOMES_STREAM, platform_outcome_subjects

    await js.add_consumer(OUTCOMES_STREAM, ConsumerConfig(
        durable_name=platform_consumer(platform), filter_subject=platform_outcome_subjects(platform),
        ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW,
        description=f"outcomes for support platform {platform}"))


OUTCOME_WATCH_IDLE_SECONDS = 30.0
"""How long the server keeps a watcher whose subscriber has gone (it deletes it itself: the
platform may not delete consumers, since that grant would reach its durable one too)."""


async def watch_platform_outcomes(nc: Any, platform: str,
                                  on_outcome: Callable[[Any], Awaitable[None]]) -> Any:
    """Receive support platform `platform`'s outcomes published from now on, through an
    ephemeral push consumer on the outcome-watch stream, filtered to them and delivered to this
    connection's own inbox: the one way a platform's identity may watch outcomes besides its
    durable consumer (see `pinworks_contracts.identities.outcome_watch_create`). Returns the
    subscription to unsubscribe."""
    import uuid

    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from pinworks_contracts.subjects import OUTCOME_WATCH_STREAM, platform_outcome_subjects

    inbox = nc.new_inbox()
    subscription = await nc.subscribe(inbox, cb=on_outcome)
    try:
        await nc.jetstream().add_consumer(OUTCOME_WATCH_STREAM, ConsumerConfig(
            name=f"watch-{platform}-{uuid.uuid4().hex[:16]}",
            filter_subject=platform_outcome_subjects(platform), deliver_subject=inbox,
            deliver_policy=DeliverPolicy.NEW, ack_policy=AckPolicy.NONE,
            inactive_threshold=OUTCOME_WATCH_IDLE_SECONDS, mem_storage=True, num_replicas=1,
            description=f"a command watching support platform {platform}'s outcomes"))
    except BaseException:
        await subscription.unsubscribe()
        raise
    return subscription


class _Batch:
    """The acknowledgements one `JetStreamAcks.publish_all` call still waits for."""

    __slots__ = ("left", "settled")

    def __init__(self, settled: asyncio.Future[None], left: int) -> None:
        self.settled = settled
        self.left = left


class JetStreamAcks:
    """JetStream publishes sent without waiting, their acknowledgements awaited together, on one
    reply subscription in the connection's own inbox (`<inbox>.<token>`).

    nats-py's `publish_async` does the same but never settles a publish JetStream refuses
    (its reply handler raises the error instead of setting it, so the caller waits out its
    timeout); here a refusal fails the batch with the `APIError` at once. A batch is one future,
    settled by its last acknowledgement: a future per publish, gathered, and a `PubAck` built
    from each reply cost more than sending the message (`benchmarks/bench_publish.py`)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._prefix: str | None = None
        self._starting = asyncio.Lock()
        self._tokens = itertools.count()
        self._waiting: dict[str, _Batch] = {}

    async def publish_all(self, messages: Sequence[tuple[str, bytes, str, dict[str, str]]],
                          timeout: float) -> None:  # noqa: ASYNC109
        """Send each (subject, payload, stream, headers) to its stream (JetStream refuses one
        whose subject is another's), then wait until every one is acknowledged; raises the
        first refusal, or `TimeoutError` when the acknowledgements take longer than `timeout`
        seconds."""
        from nats.js import api

        if not messages:
            return
        prefix = self._prefix or await self._start()
        batch = _Batch(asyncio.get_running_loop().create_future(), len(messages))
        tokens = []
        try:
            for subject, payload, stream, headers in messages:
                token = str(next(self._tokens))
                tokens.append(token)
                self._waiting[token] = batch
                await self.client.publish(subject, payload, reply=f"{prefix}.{token}",
                                          headers={**headers, api.Header.EXPECTED_STREAM: stream})
            async with asyncio.timeout(timeout):
                await batch.settled
        finally:
            for token in tokens:
                self._waiting.pop(token, None)  # those whose acknowledgement never came
            if not batch.settled.done():
                batch.settled.cancel()
            elif not batch.settled.cancelled():
                batch.settled.exception()  # retrieved: a refusal seen after a send failed

    async def _start(self) -> str:
        async with self._starting:
            if self._prefix is None:
                prefix = self.client.new_inbox()
                await self.client.subscribe(f"{prefix}.*", cb=self._settle)
                self._prefix = prefix
            return self._prefix

    async def _settle(self, message: Any) -> None:
        from nats.js import api
        from nats.js.errors import APIError, NoStreamResponseError

        batch = self._waiting.pop(message.subject.rpartition(".")[2], None)
        if batch is None or batch.settled.done():
            return
        if message.headers and message.headers.get(api.Header.STATUS) == "503":
            batch.settled.set_exception(NoStreamResponseError())
            return
        try:
            reply = json.loads(message.data)
            if "error" in reply:
                APIError.from_error(reply["error"])  # raises the error's own class
            if not isinstance(reply.get("seq"), int):
                raise APIError(description=f"not a publish acknowledgement: {reply!r:.200}")
        except Exception as error:  # noqa: BLE001 - whatever the reply was, this publish failed
            batch.settled.set_exception(error)
            return
        batch.left -= 1
        if not batch.left:
            batch.settled.set_result(None)
