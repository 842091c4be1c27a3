"""NATS identities and least privilege against a real nats-server with the generated configuration
(TLS, one nkey user per identity): who may connect, publish, subscribe and read which consumer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig

from pinworks_common.nats_client import (
    connect_options,
    ensure_platform_consumer,
    watch_platform_outcomes,
)
from pinworks_common.streams import declare_streams
from pinworks_contracts import subjects as S
from pinworks_contracts.identities import (
    DEFAULT_PLATFORM,
    OPERATOR,
    SERVICES,
    inbox_prefix,
    platform_consumer,
)
from pinworks_devtools import EmbeddedNats, NatsSecurity

pytestmark = pytest.mark.integration

PARTNER = "partner"
"""A second support platform of this module's server."""
SUBMITTED = S.submission_subject(DEFAULT_PLATFORM)


@dataclass
class Server:
    url: str
    security: NatsSecurity


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A secured embedded nats-server of this module's own, configured as `make run` and the
    test session configure theirs (its streams and forged messages touch no other test; the
    session's own may be a NATS_URL server, whose configuration is not ours to test)."""
    own = EmbeddedNats(tmp_path_factory.mktemp("secured-nats"), secured=True,
                       platforms=(DEFAULT_PLATFORM, PARTNER)).start()
    try:
        assert own.security is not None
        yield Server(own.url, own.security)
    finally:
        own.stop()


@dataclass
class Errors:
    """The asynchronous errors the server sent one connection (permission violations)."""

    seen: list[str] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def add(self, error: Exception) -> None:
        async with self.changed:
            self.seen.append(str(error).lower())
            self.changed.notify_all()

    async def wait_for(self, fragment: str, within: float = 10) -> None:
        fragment = fragment.lower()
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: any(fragment in e for e in self.seen)), within)


@dataclass
class Connected:
    nc: Client
    errors: Errors


async def connect_as(server: Server, identity: str) -> Connected:
    errors = Errors()
    nc = await nats.connect(server.url, error_cb=errors.add, max_reconnect_attempts=0,
                            connect_timeout=5, **connect_options(server.security.client_env(identity)))
    return Connected(nc, errors)


@pytest_asyncio.fixture
async def operator(server: Server) -> AsyncIterator[Connected]:
    """The operator's connection, with the pinworks streams and the platform's consumer declared."""
    connected = await connect_as(server, OPERATOR)
    js = connected.nc.jetstream()
    await declare_streams(js)
    for name in (DEFAULT_PLATFORM, PARTNER):
        await ensure_platform_consumer(js, name)
    yield connected
    await connected.nc.close()


@pytest_asyncio.fixture
async def platform(server: Server, operator: Connected) -> AsyncIterator[Connected]:
    connected = await connect_as(server, DEFAULT_PLATFORM)
    yield connected
    await connected.nc.close()


async def test_a_client_without_credentials_is_refused(server: Server) -> None:
    ca_only = {"NATS_TLS_CA": server.security.client_env(OPERATOR)["NATS_TLS_CA"]}
    with pytest.raises(NatsError, match="(?i)authorization violation"):
        await nats.connect(server.url, allow_reconnect=False, connect_timeout=5,
                           **connect_options(ca_only))


async def test_a_client_that_does_not_verify_the_server_cannot_talk_plaintext(server: Server
                                                                             ) -> None:
    """TLS is required: a client with the right seed but no CA to check the server fails the
    handshake rather than talking in the clear."""
    seed_only = {"NATS_NKEY": server.security.client_env(OPERATOR)["NATS_NKEY"]}
    with pytest.raises((ssl.SSLError, NatsError, OSError)):
        await nats.connect(server.url, allow_reconnect=False, connect_timeout=5,
                           **connect_options(seed_only))


async def test_a_wrong_seed_is_refused(server: Server, tmp_path: pytest.TempPathFactory) -> None:
    from pinworks_common.deployment_secrets import new_user_seed

    stranger = tmp_path / "stranger.nk"  # type: ignore[operator]
    stranger.write_bytes(new_user_seed())
    env = {**server.security.client_env(DEFAULT_PLATFORM), "NATS_NKEY": str(stranger)}
    with pytest.raises(NatsError, match="(?i)authorization violation"):
        await nats.connect(server.url, allow_reconnect=False, connect_timeout=5,
                           **connect_options(env))


async def test_a_platform_submits_tickets_and_reads_outcomes_through_its_own_consumer(
        platform: Connected, operator: Connected) -> None:
    js = platform.nc.jetstream()
    ticket_id = f"T-{uuid.uuid4().hex[:8]}"
    ack = await js.publish(SUBMITTED, json.dumps({"ticket_id": ticket_id}).encode(),
                           stream=S.TICKETS_STREAM, headers={"Nats-Msg-Id": f"{ticket_id}:submitted"})
    assert ack.stream == S.TICKETS_STREAM

    theirs = json.dumps({"ticket_id": ticket_id, "status": "rejected", "platform": PARTNER})
    outcome = json.dumps({"ticket_id": ticket_id, "status": "resolved"}).encode()
    operator_js = operator.nc.jetstream()
    await operator_js.publish(S.outcome_subject(S.OutcomeStatus.REJECTED, PARTNER),
                              theirs.encode(), stream=S.OUTCOMES_STREAM)
    await operator_js.publish(S.outcome_subject(S.OutcomeStatus.RESOLVED, DEFAULT_PLATFORM),
                              outcome, stream=S.OUTCOMES_STREAM)
    reader = await js.pull_subscribe_bind(platform_consumer(DEFAULT_PLATFORM), S.OUTCOMES_STREAM,
                                          inbox_prefix=f"{inbox_prefix(DEFAULT_PLATFORM)}.".encode())
    seen: list[bytes] = []
    while outcome not in seen:
        for msg in await reader.fetch(10, timeout=5):
            seen.append(msg.data)
            await msg.ack()
    assert theirs.encode() not in seen, "another platform's outcome reached this platform"
    assert platform.errors.seen == []


async def test_a_platform_watches_its_own_outcomes_and_no_one_elses(
        platform: Connected, operator: Connected) -> None:
    """`pinworks submit` and `replay` as the platform: an ephemeral watcher on the outcome-watch
    stream, filtered to the platform's own outcomes, delivered to its own inbox."""
    seen: list[bytes] = []
    arrived = asyncio.Event()
    mine = json.dumps({"ticket_id": f"W-{uuid.uuid4().hex[:8]}", "status": "resolved"}).encode()

    async def on_outcome(msg: Any) -> None:
        seen.append(msg.data)
        if msg.data == mine:
            arrived.set()

    watch = await watch_platform_outcomes(platform.nc, DEFAULT_PLATFORM, on_outcome)
    theirs = b'{"ticket_id": "W-partner", "status": "resolved"}'
    operator_js = operator.nc.jetstream()
    await operator_js.publish(S.outcome_subject(S.OutcomeStatus.RESOLVED, PARTNER), theirs,
                              stream=S.OUTCOMES_STREAM)
    await operator_js.publish(S.outcome_subject(S.OutcomeStatus.RESOLVED, DEFAULT_PLATFORM), mine,
                              stream=S.OUTCOMES_STREAM)
    await asyncio.wait_for(arrived.wait(), 10)
    await watch.unsubscribe()
    assert theirs not in seen
    assert platform.errors.seen == []


async def test_a_platform_cannot_watch_another_platforms_outcomes(
        platform: Connected, operator: Connected) -> None:
    with pytest.raises(NatsError):
        await watch_platform_outcomes(platform.nc, PARTNER, _ignore)
    await platform.errors.wait_for("permissions violation for publish to")


async def test_the_server_pins_a_watchers_filter_to_its_create_subject(
        platform: Connected, operator: Connected) -> None:
    """The grant names the platform's filter in the create subject; a request body that asks
    for another filter under that subject is refused by nats-server itself (error 10131)."""
    request = {"stream_name": S.OUTCOME_WATCH_STREAM, "config": {
        "name": "sneaky", "filter_subject": S.platform_outcome_subjects(PARTNER),
        "deliver_subject": platform.nc.new_inbox(), "ack_policy": "none"}}
    own_filter = S.platform_outcome_subjects(DEFAULT_PLATFORM)
    reply = await platform.nc.request(
        f"$JS.API.CONSUMER.CREATE.{S.OUTCOME_WATCH_STREAM}.sneaky.{own_filter}",
        json.dumps(request).encode(), timeout=5)
    assert json.loads(reply.data)["error"]["err_code"] == 10131


@pytest.mark.parametrize("durable", [platform_consumer(PARTNER), platform_consumer(DEFAULT_PLATFORM),
                                     S.QUALITY_SAMPLE])
async def test_a_platform_cannot_move_a_durable_consumers_filter(
        platform: Connected, operator: Connected, durable: str) -> None:
    """A create request naming a durable of the outcomes stream with the platform's own filter
    would move that durable's filter (nats-server updates a consumer whose config otherwise
    matches): the watcher grant is on the outcome-watch stream only, where no durable lives."""
    js = operator.nc.jetstream()
    with contextlib.suppress(NatsError):
        await js.add_consumer(S.OUTCOMES_STREAM, durable_name=durable, ack_policy="explicit",
                              filter_subject=S.OUTCOME_WILDCARD)
    before = (await js.consumer_info(S.OUTCOMES_STREAM, durable)).config
    own_filter = S.platform_outcome_subjects(DEFAULT_PLATFORM)
    forged = {**before.as_dict(), "filter_subject": own_filter}
    subject = f"$JS.API.CONSUMER.CREATE.{S.OUTCOMES_STREAM}.{durable}.{own_filter}"
    await platform.nc.publish(subject, json.dumps({"stream_name": S.OUTCOMES_STREAM,
                                                   "config": forged}).encode(),
                              reply=f"{inbox_prefix(DEFAULT_PLATFORM)}.x")
    await platform.errors.wait_for(f'permissions violation for publish to "{subject.lower()}"')
    assert (await js.consumer_info(S.OUTCOMES_STREAM, durable)).config.filter_subject == \
        before.filter_subject


async def _ignore(msg: Any) -> None:
    """A watcher callback that never runs."""


@pytest.mark.parametrize("subject", [
    S.outcome_subject(S.OutcomeStatus.RESOLVED, DEFAULT_PLATFORM),
    S.outcome_subject(S.OutcomeStatus.REJECTED, DEFAULT_PLATFORM), S.CLASSIFIED,
    S.DRAFTED, S.ESCALATION_REQUESTED, S.dead_letter_subject(S.Stage.VERIFIER),
    f"$KV.{S.ROUTER_POLICY_BUCKET}.{S.ROUTER_POLICY_KEY}",
    f"$JS.API.STREAM.PURGE.{S.OUTCOMES_STREAM}", f"$JS.API.STREAM.DELETE.{S.TICKETS_STREAM}",
    f"$JS.API.CONSUMER.CREATE.{S.OUTCOMES_STREAM}",
    f"$JS.API.CONSUMER.DURABLE.CREATE.{S.OUTCOMES_STREAM}.mine",
    f"$JS.API.CONSUMER.INFO.{S.TICKETS_STREAM}.{S.Stage.CLASSIFIER}",
    f"$JS.API.CONSUMER.MSG.NEXT.{S.WORK_STREAM}.{S.Stage.VERIFIER}",
    f"$JS.API.CONSUMER.MSG.NEXT.{S.OUTCOMES_STREAM}.{platform_consumer('another')}",
    f"$JS.ACK.{S.WORK_STREAM}.{S.Stage.VERIFIER}.1.1.1.1.1",
])
async def test_a_platform_cannot_publish_outside_its_own_subjects(
        platform: Connected, operator: Connected, subject: str) -> None:
    before = {name: (await operator.nc.jetstream().stream_info(name)).state.messages
              for name in (S.OUTCOMES_STREAM, S.WORK_STREAM)}
    await platform.nc.publish(subject, b'{"forged": true}', reply=f"{inbox_prefix(DEFAULT_PLATFORM)}.x")
    await platform.nc.flush()
    await platform.errors.wait_for(f'permissions violation for publish to "{subject.lower()}"')
    after = {name: (await operator.nc.jetstream().stream_info(name)).state.messages
             for name in (S.OUTCOMES_STREAM, S.WORK_STREAM)}
    assert after == before


@pytest.mark.parametrize("subject", [
    S.submission_subject(PARTNER), S.SUBMITTED_PREFIX, f"{SUBMITTED}.more",
])
async def test_a_platform_cannot_submit_on_another_platforms_subject(
        platform: Connected, operator: Connected, subject: str) -> None:
    """The submission subject names the platform: `support` cannot submit as `partner` (nor on
    the bare or a deeper subject), so the classifier may trust the platform the subject names."""
    before = (await operator.nc.jetstream().stream_info(S.TICKETS_STREAM)).state.messages
    await platform.nc.publish(subject, b'{"ticket_id": "T-forged"}',
                              reply=f"{inbox_prefix(DEFAULT_PLATFORM)}.x")
    await platform.nc.flush()
    await platform.errors.wait_for(f'permissions violation for publish to "{subject.lower()}"')
    assert (await operator.nc.jetstream().stream_info(S.TICKETS_STREAM)).state.messages == before


async def test_each_platform_submits_on_its_own_subject(server: Server, operator: Connected
                                                        ) -> None:
    partner = await connect_as(server, PARTNER)
    try:
        ack = await partner.nc.jetstream().publish(
            S.submission_subject(PARTNER), b'{"ticket_id": "P-1"}', stream=S.TICKETS_STREAM)
        stored = await operator.nc.jetstream().get_msg(S.TICKETS_STREAM, ack.seq)
        assert stored.subject == S.submission_subject(PARTNER)
        assert S.submitting_platform(stored.subject) == PARTNER
        assert partner.errors.seen == []
    finally:
        await partner.nc.close()


@pytest.mark.parametrize("subject", [
    S.OUTCOME_WILDCARD, "pinworks.work.>", SUBMITTED, f"$KV.{S.ROUTER_POLICY_BUCKET}.>", ">",
    f"{inbox_prefix(S.Stage.CLASSIFIER)}.>", f"{inbox_prefix(OPERATOR)}.>", "_INBOX.>",
])
async def test_a_platform_cannot_listen_outside_its_own_inbox(
        platform: Connected, subject: str) -> None:
    await platform.nc.subscribe(subject)
    await platform.nc.flush()
    await platform.errors.wait_for(f'permissions violation for subscription to "{subject.lower()}"')


@pytest.mark.parametrize(("identity", "subject"), [
    (S.Stage.CLASSIFIER, S.outcome_subject(S.OutcomeStatus.RESOLVED, DEFAULT_PLATFORM)),
    (S.Stage.CLASSIFIER, f"$KV.{S.ROUTER_POLICY_BUCKET}.{S.ROUTER_POLICY_KEY}"),
    (S.Stage.ROUTER, f"$KV.{S.ROUTER_POLICY_BUCKET}.{S.ROUTER_POLICY_KEY}"),
    (S.Stage.ROUTER, S.outcome_subject(S.OutcomeStatus.RESOLVED, DEFAULT_PLATFORM)),
    (S.Stage.VERIFIER, S.outcome_subject(S.OutcomeStatus.ESCALATED, DEFAULT_PLATFORM)),
    (S.Stage.VERIFIER, S.CLASSIFIED),
    ("specialists", S.outcome_subject(S.OutcomeStatus.RESOLVED, DEFAULT_PLATFORM)),
    (S.Stage.ESCALATION, S.DRAFTED),
    (S.Stage.ESCALATION, f"$JS.API.CONSUMER.MSG.NEXT.{S.WORK_STREAM}.{S.Stage.VERIFIER}"),
])
async def test_a_service_publishes_only_its_own_outputs(
        server: Server, operator: Connected, identity: str, subject: str) -> None:
    service = await connect_as(server, identity)
    try:
        await service.nc.publish(subject, b"{}")
        await service.nc.flush()
        await service.errors.wait_for(f'permissions violation for publish to "{subject.lower()}"')
    finally:
        await service.nc.close()


async def test_every_service_binds_its_own_consumer_and_no_other(
        server: Server, operator: Connected) -> None:
    js = operator.nc.jetstream()
    await js.add_consumer(S.TICKETS_STREAM, ConsumerConfig(
        durable_name=S.Stage.CLASSIFIER, filter_subject=S.SUBMITTED_WILDCARD, ack_policy=AckPolicy.EXPLICIT))
    classifier = await connect_as(server, S.Stage.CLASSIFIER)
    router = await connect_as(server, S.Stage.ROUTER)
    try:
        info = await classifier.nc.jetstream().consumer_info(S.TICKETS_STREAM, S.Stage.CLASSIFIER)
        assert info.name == S.Stage.CLASSIFIER
        await router.nc.publish(f"$JS.API.CONSUMER.INFO.{S.TICKETS_STREAM}.{S.Stage.CLASSIFIER}", b"",
                                reply=f"{inbox_prefix(S.Stage.ROUTER)}.x")
        await router.nc.flush()
        await router.errors.wait_for("permissions violation for publish")
    finally:
        await classifier.nc.close()
        await router.nc.close()


def test_identity_files_are_private(server: Server) -> None:
    security = server.security
    assert set(security.identities) >= {*SERVICES, OPERATOR, DEFAULT_PLATFORM}
    for private in (*(i.seed_file for i in security.identities.values()), security.key_file,
                    security.config_file):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    assert stat.S_IMODE(security.directory.stat().st_mode) == 0o700


async def test_the_cli_names_a_permission_the_server_refused_and_exits_non_zero(
        server: Server, operator: Connected) -> None:
    """The server reports a permission violation asynchronously (the publish or subscription
    just gets no answer): the CLI says which subject this identity may not use, at once,
    instead of waiting for a timeout it would report as an unreachable NATS."""
    env = {**os.environ, **server.security.client_env(S.Stage.CLASSIFIER), "NATS_URL": server.url,
           "DATABASE_URL": "postgresql://unused@127.0.0.1:1/none"}
    refused = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "pinworks_cli", "submit", "My card is lost",
                         "--ticket-id", f"T-{uuid.uuid4().hex[:8]}", "--wait", "0"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr
    [error] = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert error.startswith(f"error: NATS at {server.url} refused this identity (nkey seed ")
    assert 'permissions violation for publish to "$js.api.consumer.create.' in error.lower()
    assert "cannot reach" not in refused.stderr


async def test_pinworks_submit_as_the_platform_waits_for_its_outcome(
        server: Server, operator: Connected) -> None:
    """`source .run/env; pinworks submit ...` acts as the support platform: it submits on the
    platform's subject and waits through a watcher of the platform's own outcomes (the operator
    stands in for the pipeline and answers the submission)."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from pinworks_contracts.messages import Outcome

    ticket_id = f"T-{uuid.uuid4().hex[:8]}"

    async def answer(msg: Any) -> None:
        outcome = Outcome(ticket_id=json.loads(msg.data)["ticket_id"], business_unit="retail",
                          status=S.OutcomeStatus.RESOLVED, answer="answered by the test",
                          cost_usd=Decimal(0), resolved_by="automation",
                          decided_at=datetime.now(UTC))
        await operator.nc.jetstream().publish(
            S.outcome_subject(S.OutcomeStatus.RESOLVED, DEFAULT_PLATFORM),
            outcome.model_dump_json().encode(), stream=S.OUTCOMES_STREAM)

    pipeline = await operator.nc.subscribe(SUBMITTED, cb=answer)
    env = {**os.environ, **server.security.client_env(DEFAULT_PLATFORM), "NATS_URL": server.url,
           "PINWORKS_PLATFORM": DEFAULT_PLATFORM,
           "DATABASE_URL": "postgresql://unused@127.0.0.1:1/none"}
    try:
        submitted = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "pinworks_cli", "submit", "My card is lost",
                             "--ticket-id", ticket_id, "--wait", "60"],
            env=env, capture_output=True, text=True, timeout=120, check=False)
    finally:
        await pipeline.unsubscribe()
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert json.loads(submitted.stdout)["ticket_id"] == ticket_id
    assert "answered by the test" in submitted.stdout


@pytest.mark.parametrize(("identity", "stage"), [
    (S.Stage.CLASSIFIER, S.Stage.CLASSIFIER), (S.Stage.ROUTER, S.Stage.ROUTER),
    ("specialists", S.Stage.SPECIALIST), (S.Stage.VERIFIER, S.Stage.VERIFIER),
    (S.Stage.ESCALATION, S.Stage.ESCALATION), (S.Stage.ESCALATION, S.Stage.AGENT),
    (S.Stage.ESCALATION, S.QUALITY_SAMPLE),
])
async def test_every_consumer_can_dead_letter_a_poison_message(
        server: Server, operator: Connected, identity: str, stage: str) -> None:
    """Each stage a service mounts dead-letters on its own subject; one it may not publish to
    leaves a poison message ack-pending for ever (the quality sample's was missing)."""
    service = await connect_as(server, identity)
    try:
        ack = await service.nc.jetstream().publish(S.dead_letter_subject(stage), b"{}",
                                                   stream=S.DEAD_LETTER_STREAM, timeout=5)
        assert ack.stream == S.DEAD_LETTER_STREAM
        assert service.errors.seen == []
    finally:
        await service.nc.close()
