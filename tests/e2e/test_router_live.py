"""The running router service swaps its policy from the KV bucket, without a restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pinworks_cli.main import app
from pinworks_contracts.subjects import ROUTER_POLICY_BUCKET
from pinworks_router.policy import DEFAULT_POLICY, parse_policy
from pinworks_router.rollout import REPLICAS_PREFIX, replica_states

from .conftest import Platform, PlatformClient, run_id, ticket


def with_first_rule(policy_text: str, rule: dict[str, Any]) -> str:
    """The policy with ``rule`` tried before all of its own."""
    policy = yaml.safe_load(policy_text)
    policy["rules"].insert(0, rule)
    return str(yaml.safe_dump(policy, sort_keys=False))

pytestmark = pytest.mark.e2e


async def _apply_and_wait(client: PlatformClient, path: Path, text: str, replicas: set[str]
                          ) -> str:
    """Apply through the CLI; return once every known replica reports running the version."""
    version = parse_policy(text).version
    kv = await client.js.key_value(ROUTER_POLICY_BUCKET)
    watcher = await kv.watch(f"{REPLICAS_PREFIX}.current.>")
    try:
        result = await asyncio.to_thread(CliRunner().invoke, app, ["policy", "apply", str(path)])
        assert result.exit_code == 0, result.output
        running: dict[str, Any] = {}
        while not replicas or any(running.get(r) != version for r in replicas):
            entry = await watcher.updates(timeout=30)
            if entry is not None and entry.value:
                state = json.loads(entry.value)
                running[state["replica"]] = state["version"]
                if not replicas:
                    replicas = {state["replica"]}
    finally:
        await watcher.stop()
    return version


async def running_replicas(platform: Platform, client: PlatformClient,
                           monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The running router's replicas; the in-process CLI talks to the platform as operator."""
    monkeypatch.setenv("NATS_URL", platform.nats_url)
    monkeypatch.setenv("DATABASE_URL", platform.database_url)
    kv = await client.js.key_value(ROUTER_POLICY_BUCKET)
    router_pid = platform.processes["router"].pid
    replicas = {s["replica"] for s in await replica_states(kv)
                if s["key"] == "current" and s["replica"].endswith(f"-{router_pid}")}
    # Entries of replicas killed earlier in the session stay in the bucket: wait for the live one.
    assert replicas, "the running router reports its policy version at start"
    return replicas


async def test_running_router_switches_policy_without_restart(
    platform: Platform, client: PlatformClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_id()
    replicas = await running_replicas(platform, client, monkeypatch)
    shipped = DEFAULT_POLICY.read_text()
    candidate = tmp_path / "candidate.yaml"
    candidate_text = with_first_rule(shipped, {
        "name": f"e2e-live-{run}", "when": {"metadata": {"e2e_run": [run]}},
        "handler": "human", "reason": "live policy switch test"})
    candidate.write_text(candidate_text)
    restore = tmp_path / "default.yaml"
    restore.write_text(shipped)
    try:
        version = await _apply_and_wait(client, candidate, candidate_text, replicas)
        ticket_id = f"live-{run}"
        await client.submit(ticket(ticket_id, "My new card has not arrived yet",
                                   metadata={"e2e_run": run}))
        await client.outcomes.wait_for([ticket_id])
        rows = await client.fetch(
            "SELECT version, output FROM decisions WHERE ticket_id = :t AND stage = 'router'",
            t=ticket_id)
        assert [(r.version, r.output["rule"], r.output["handler"]) for r in rows] == [
            (version, f"e2e-live-{run}", "human")]
    finally:
        await _apply_and_wait(client, restore, shipped, replicas)


async def test_running_router_refuses_a_forged_policy_and_routes_by_the_recorded_one(
    platform: Platform, client: PlatformClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_id()
    replicas = await running_replicas(platform, client, monkeypatch)
    shipped = DEFAULT_POLICY.read_text()
    recorded = tmp_path / "default.yaml"
    recorded.write_text(shipped)
    version = await _apply_and_wait(client, recorded, shipped, replicas)
    forged = with_first_rule(shipped, {
        "name": f"forged-{run}", "when": {"metadata": {"e2e_run": [run]}},
        "handler": "human", "reason": "written into the bucket around pinworks policy apply"})
    kv = await client.js.key_value(ROUTER_POLICY_BUCKET)
    try:
        revision = await kv.put("current", forged.encode())
        [refusal] = await client.wait_rows(
            "SELECT kind, kept_version, replica FROM policy_refusals WHERE bucket = :b "
            "AND revision = :r", b=ROUTER_POLICY_BUCKET, r=revision)
        assert (refusal.kind, refusal.kept_version) == ("unrecorded_policy", version)
        assert refusal.replica in replicas
        ticket_id = f"forged-policy-{run}"
        await client.submit(ticket(ticket_id, "My new card has not arrived yet",
                                   metadata={"e2e_run": run}))
        await client.outcomes.wait_for([ticket_id])
        rows = await client.fetch(
            "SELECT version, output FROM decisions WHERE ticket_id = :t AND stage = 'router'",
            t=ticket_id)
        assert [r.version for r in rows] == [version]
        assert rows[0].output["rule"] != f"forged-{run}"
    finally:
        await _apply_and_wait(client, recorded, shipped, replicas)
