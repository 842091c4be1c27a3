"""Policy rollout through Postgres history and a NATS KV bucket, with real NATS and Postgres."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nats.js.kv import KeyValue
from typer.testing import CliRunner

from pinworks_cli.main import app
from pinworks_router.policy import load_policy, parse_policy
from pinworks_router.policy_trust import PolicyRecords
from pinworks_router.rollout import PolicyHolder, PolicyWatcher
from pinworks_router.stage import RouterStage

pytestmark = pytest.mark.integration

P1 = "rules:\n  - name: everything-kb\n    handler: kb\n    fallbacks: [human]\n"
P2 = P1 + "  - name: unreachable\n    handler: human\n"
BROKEN = "rules:\n  - name: a\n    handler: robot\n"


async def cli(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    return result.exit_code, result.output


async def test_apply_swaps_every_replica_and_never_to_a_broken_policy(
    live_policy_bucket: tuple[KeyValue, str], policy_records: PolicyRecords, tmp_path: Path
) -> None:
    kv, bucket = live_policy_bucket
    files = {name: tmp_path / f"{name}.yaml" for name in ("p1", "p2", "broken")}
    for path, text in zip(files.values(), (P1, P2, BROKEN), strict=True):
        path.write_text(text)
    v1, v2 = parse_policy(P1).version, parse_policy(P2).version

    shipped = load_policy()
    replica = PolicyHolder(shipped)
    stage = RouterStage(replica)
    watcher = PolicyWatcher(kv, replica, policy_records, bucket)
    await watcher.start()
    try:
        assert stage.policy.version == shipped.version  # empty bucket: the file policy stays
        code, out = await cli("policy", "show", "--bucket", bucket)
        assert code != 0 and "no live policy" in out

        code, out = await cli("policy", "apply", str(files["p1"]), "--bucket", bucket,
                              "--applied-by", "alice")
        assert code == 0, out
        assert v1 in out
        await replica.wait_for(lambda h: h.policy.version == v1, 10)
        assert stage.policy.version == v1

        code, out = await cli("policy", "apply", str(files["broken"]), "--bucket", bucket)
        assert code != 0 and "line 3" in out and "unknown handler 'robot'" in out

        # a broken value that bypasses the CLI is refused by the replica; v1 keeps running
        await kv.put("current", BROKEN.encode())
        await replica.wait_for(lambda h: len(h.rejected) == 1, 10)
        assert replica.policy.version == v1 and "unknown handler" in replica.rejected[0]

        code, out = await cli("policy", "apply", str(files["p2"]), "--bucket", bucket,
                              "--applied-by", "bob")
        assert code == 0, out
        await replica.wait_for(lambda h: h.policy.version == v2, 10)

        # a replica that starts now gets the live policy before it routes anything
        late = PolicyHolder(shipped)
        late_watcher = PolicyWatcher(kv, late, policy_records, bucket)
        await late_watcher.start()
        assert late.policy.version == v2
        await late_watcher.stop()

        code, out = await cli("policy", "show", "--bucket", bucket)
        assert code == 0 and f"live {v2}" in out and "unreachable" in out
        code, out = await cli("policy", "show", v1)
        assert code == 0 and "applied" in out and "by alice" in out and "unreachable" not in out
        code, out = await cli("policy", "diff", v1, "live", "--bucket", bucket)
        assert code == 1 and "+  - name: unreachable" in out
        code, out = await cli("policy", "diff", str(files["p2"]), "live", "--bucket", bucket)
        assert code == 0 and "no difference" in out
        code, out = await cli("policy", "history", "--limit", "500")
        assert code == 0
        assert out.index(v2) < out.index(v1)  # newest first; the broken one was never stored
    finally:
        await watcher.stop()
