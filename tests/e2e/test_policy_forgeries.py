"""A policy written into the KV bucket around `pinworks policy apply` is refused: the router
keeps the last good recorded one, logs, counts and audits the refusal (real NATS and Postgres)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from nats.js.kv import KeyValue
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from pinworks_cli.main import app
from pinworks_common.db.engine import create_engine
from pinworks_common.ledger.postgres import ledger_on
from pinworks_common.stage import record_batch
from pinworks_contracts.subjects import ROUTER_POLICY_KEY, ROUTER_SHADOW_KEY, routed_subject
from pinworks_devtools.processes import LOOPBACK, free_port
from pinworks_router.policy import load_policy, parse_policy
from pinworks_router.policy_trust import PolicyRecords
from pinworks_router.rollout import KV_HISTORY, PolicyHolder, PolicyWatcher, ShadowHolder
from pinworks_router.stage import RouterStage
from tests.conftest import Database

from .conftest import run_id
from .test_router_shadow import work

pytestmark = pytest.mark.integration

RUN = f"description: policy forgery test {run_id()}\n"
"""Makes this module's policies its own: the session's history is shared by every test."""
GOOD = RUN + "rules:\n  - name: everything-kb\n    handler: kb\n    fallbacks: [human]\n"
NEXT = GOOD + "  - name: unreachable\n    handler: human\n"
FORGED = RUN + "rules:\n  - name: everything-frontier\n    handler: llm_frontier\n"
"""The right shape, a valid policy: only the history says it was never applied."""


async def cli(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    return result.exit_code, result.output


async def apply(tmp_path: Path, bucket: str, policy: str, *extra: str) -> None:
    path = tmp_path / f"policy-{run_id()}.yaml"
    path.write_text(policy)
    code, out = await cli("policy", "apply", str(path), "--bucket", bucket, *extra)
    assert code == 0, out


def refused_count(kind: str = "unrecorded_policy") -> float:
    return REGISTRY.get_sample_value("pinworks_refusals_total",
                                     {"stage": "router", "kind": kind}) or 0.0


async def refusals(admin_url: str, bucket: str, key: str) -> list[Any]:
    engine = create_engine(admin_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(
                "SELECT * FROM policy_refusals WHERE bucket = :b AND key = :k ORDER BY id"),
                {"b": bucket, "k": key})).all())
    finally:
        await engine.dispose()


async def routed(admin_url: str, stage: RouterStage, ticket_id: str) -> str:
    engine = create_engine(admin_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            [publication] = await record_batch(stage, ledger_on(conn), [work(ticket_id)])
        return publication.subject
    finally:
        await engine.dispose()


async def started(kv: KeyValue, holder: PolicyHolder | ShadowHolder, records: PolicyRecords,
                  bucket: str, key: str = ROUTER_POLICY_KEY) -> PolicyWatcher:
    watcher = PolicyWatcher(kv, holder, records, bucket, key)
    await watcher.start()
    return watcher


async def test_a_forged_live_policy_is_refused_audited_and_never_loaded_even_at_start(
    live_policy_bucket: tuple[KeyValue, str], policy_records: PolicyRecords,
    migrated_database_url: str, tmp_path: Path,
) -> None:
    kv, bucket = live_policy_bucket
    good, following = parse_policy(GOOD).version, parse_policy(NEXT).version
    replica = PolicyHolder(load_policy())
    stage = RouterStage(replica)
    watcher = await started(kv, replica, policy_records, bucket)
    try:
        await apply(tmp_path, bucket, GOOD)
        await replica.wait_for(lambda h: h.policy.version == good, 10)
        before = refused_count()

        revision = await kv.put(ROUTER_POLICY_KEY, FORGED.encode())
        await replica.wait_for(lambda h: len(h.rejected) == 1, 10)
        assert replica.policy.version == good
        assert "matches no recorded live policy" in replica.rejected[0]
        assert refused_count() == before + 1
        assert await routed(migrated_database_url, stage, f"forged-{run_id()}") \
            == routed_subject("kb")
        [row] = await refusals(migrated_database_url, bucket, ROUTER_POLICY_KEY)
        assert (row.revision, row.kind, row.version, row.kept_version, row.replica) == (
            revision, "unrecorded_policy", parse_policy(FORGED).version, good,
            policy_records.replica)
        assert row.excerpt == FORGED

        # a policy recorded only as a shadow candidate is no live policy
        await apply(tmp_path, bucket, NEXT, "--shadow")
        await kv.put(ROUTER_POLICY_KEY, NEXT.encode())
        await replica.wait_for(lambda h: len(h.rejected) == 2, 10)
        assert replica.policy.version == good

        await apply(tmp_path, bucket, NEXT)  # the legitimate way still works
        await replica.wait_for(lambda h: h.policy.version == following, 10)

        # a replica starting on a forged value takes the newest recorded revision of the key
        await kv.put(ROUTER_POLICY_KEY, FORGED.encode())
        late = PolicyHolder(load_policy())
        await (await started(kv, late, policy_records, bucket)).stop()
        assert late.policy.version == following and len(late.rejected) == 1

        # ... or, with the key's history all forged, the newest recorded live policy
        for _ in range(KV_HISTORY):
            await kv.put(ROUTER_POLICY_KEY, FORGED.encode())
        later = PolicyHolder(load_policy())
        await (await started(kv, later, policy_records, bucket)).stop()
        assert later.policy.version == following and len(later.rejected) == 1
    finally:
        await watcher.stop()


async def test_a_forged_shadow_policy_is_refused_and_a_cleared_shadow_stays_cleared(
    live_policy_bucket: tuple[KeyValue, str], policy_records: PolicyRecords,
    migrated_database_url: str, tmp_path: Path,
) -> None:
    kv, bucket = live_policy_bucket
    candidate = parse_policy(NEXT).version
    shadow = ShadowHolder()
    watcher = await started(kv, shadow, policy_records, bucket, ROUTER_SHADOW_KEY)
    try:
        await apply(tmp_path, bucket, NEXT, "--shadow")
        await shadow.wait_for(lambda h: h.policy is not None, 10)

        await kv.put(ROUTER_SHADOW_KEY, FORGED.encode())
        await shadow.wait_for(lambda h: len(h.rejected) == 1, 10)
        assert shadow.policy is not None and shadow.policy.version == candidate
        await kv.put(ROUTER_SHADOW_KEY, GOOD.encode())  # recorded nowhere as a shadow
        await shadow.wait_for(lambda h: len(h.rejected) == 2, 10)
        [first, second] = await refusals(migrated_database_url, bucket, ROUTER_SHADOW_KEY)
        assert (first.kind, first.kept_version) == ("unrecorded_policy", candidate)
        assert "no recorded shadow policy" in second.reason

        late = ShadowHolder()
        await (await started(kv, late, policy_records, bucket, ROUTER_SHADOW_KEY)).stop()
        assert late.policy is not None and late.policy.version == candidate

        code, out = await cli("policy", "shadow-clear", "--bucket", bucket)
        assert code == 0, out
        await shadow.wait_for(lambda h: h.policy is None, 10)
        await kv.put(ROUTER_SHADOW_KEY, FORGED.encode())
        await shadow.wait_for(lambda h: len(h.rejected) == 3, 10)
        assert shadow.policy is None
        restarted = ShadowHolder()
        await (await started(kv, restarted, policy_records, bucket, ROUTER_SHADOW_KEY)).stop()
        assert restarted.policy is None and len(restarted.rejected) == 1
    finally:
        await watcher.stop()


class Gate:
    """A TCP forwarder in front of Postgres that the test shuts and opens: shut, new
    connections are refused and open ones cut, as when the database goes away."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port, self.listen_port = host, port, free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._forward, LOOPBACK, self.listen_port)

    async def shut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.port)
        self.writers.update((writer, upstream_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()
                self.writers.discard(sink)

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def url(self, database_url: str) -> str:
        return make_url(database_url).set(host=LOOPBACK, port=self.listen_port).render_as_string(
            hide_password=False)


async def test_a_policy_refused_while_postgres_was_unreachable_is_checked_again_and_audited(
    live_policy_bucket: tuple[KeyValue, str], database: Database, migrated_database_url: str,
    tmp_path: Path,
) -> None:
    """Postgres goes away under a running replica: a forged value and a legitimate apply both
    reach it unchecked and are refused (routing keeps the running policy). Once Postgres
    answers again, the forgery's refusal is audited as unrecorded and the applied policy, the
    key's newest, loads."""
    kv, bucket = live_policy_bucket
    good, following = parse_policy(GOOD).version, parse_policy(NEXT).version
    router_url = make_url(database.service_url("router"))
    assert router_url.host and router_url.port
    gate = Gate(router_url.host, router_url.port)
    await gate.open()
    engine = create_engine(gate.url(database.service_url("router")), pool_size=1)
    records = PolicyRecords(engine, f"gated-replica-{run_id()}")
    replica = PolicyHolder(load_policy())
    watcher = PolicyWatcher(kv, replica, records, bucket, ROUTER_POLICY_KEY, recheck_seconds=0.05)
    await watcher.start()
    try:
        await apply(tmp_path, bucket, GOOD)
        await replica.wait_for(lambda h: h.policy.version == good, 10)
        unverified, unrecorded = refused_count("unverified_policy"), refused_count()

        await gate.shut()
        forged = await kv.put(ROUTER_POLICY_KEY, FORGED.encode())
        await replica.wait_for(lambda h: len(h.rejected) == 1, 10)
        assert "cannot check routing_policies" in replica.rejected[0]
        await apply(tmp_path, bucket, NEXT)  # recorded, but the replica cannot see that yet
        await replica.wait_for(lambda h: len(h.rejected) == 2, 10)
        assert replica.policy.version == good
        assert refused_count("unverified_policy") == unverified + 2
        assert sorted(watcher.unchecked) == [forged, forged + 1]
        assert await refusals(migrated_database_url, bucket, ROUTER_POLICY_KEY) == []

        await gate.open()
        await replica.wait_for(lambda h: h.policy.version == following, 30)
        [row] = await refusals(migrated_database_url, bucket, ROUTER_POLICY_KEY)
        assert (row.revision, row.kind, row.version, row.kept_version, row.replica) == (
            forged, "unrecorded_policy", parse_policy(FORGED).version, good, records.replica)
        assert refused_count() == unrecorded + 1
        assert watcher.unchecked == {}
    finally:
        await watcher.stop()
        await engine.dispose()
        with contextlib.suppress(AssertionError):
            await gate.shut()
