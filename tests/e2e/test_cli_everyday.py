"""The CLI as people use it every day, against the real platform: rejections reported at once,
replays with the usual column names, a paged queue, a readable ticket, a bench that leaves no
trace in real work, one-line errors when infrastructure is missing, and JSON service logs."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import (
    OUT_OF_SCOPE,
    ROOT,
    Platform,
    PlatformClient,
    cli,
    escalate,
    fresh_unit,
    run_id,
    signed_in_env,
)

pytestmark = pytest.mark.e2e

async def acli(env: dict[str, str], *args: str, cwd: Path = ROOT
               ) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, env, *args, cwd=cwd)


async def test_submit_reports_a_rejection_at_once_and_audit_finds_it(platform: Platform) -> None:
    bad_id = f"bad id run{run_id()}!"  # letters first: eight digits alone redact as [ACCOUNT]
    started = time.monotonic()
    rejected = await acli(platform.env, "submit", "My card is lost", "--ticket-id", bad_id,
                          "--wait", "60")
    took = time.monotonic() - started
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    assert rejected.stdout.startswith("rejected (stream seq "), rejected.stdout
    assert "ticket_id" in rejected.stdout, "the reasons name the bad field"
    assert took < 30, f"reported as soon as it was recorded, not after the wait ({took:.1f}s)"
    assert "Traceback" not in rejected.stderr
    seq = rejected.stdout.split("stream seq ", 1)[1].split(")", 1)[0]
    assert f"pinworks audit --seq {seq}" in rejected.stdout

    by_seq = await acli(platform.env, "audit", "--seq", seq)
    assert by_seq.returncode == 0, by_seq.stdout + by_seq.stderr
    assert f"Rejected payload (stream seq {seq}" in by_seq.stdout
    by_id = await acli(platform.env, "audit", bad_id, "--json")
    assert by_id.returncode == 0, by_id.stdout + by_id.stderr
    trail = json.loads(by_id.stdout)
    assert [r["stream_seq"] for r in trail["rejected_payloads"]] == [int(seq)]
    assert trail["ticket"] is None

    unknown = await acli(platform.env, "audit", f"never-{run_id()}")
    assert unknown.returncode == 1 and "no ticket" in unknown.stderr

    again = await acli(platform.env, "submit", "How do I change my PIN?", "--ticket-id",
                       f"{run_id()}-ok", "--wait", "60")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["status"] in ("resolved", "escalated")


async def test_replay_reads_the_usual_column_names_and_lists_escalations(
    platform: Platform, tmp_path: Path,
) -> None:
    rid = run_id()
    path = tmp_path / f"export-{rid}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "Text", "Unit", "tier"])
        writer.writerow([f"{rid}-a", "How do I change my PIN?", f"east-{rid}", "gold"])
        writer.writerow([f"{rid}-b", OUT_OF_SCOPE, f"east-{rid}", ""])
    replayed = await asyncio.to_thread(cli, {**platform.env, "COLUMNS": "200"}, "replay",
                                       str(path), "--wait", "90")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "2/2 outcomes" in replayed.stdout
    escalated = replayed.stdout.split("Escalated to a person (1):", 1)[1]
    assert f"{rid}-b  east-{rid}" in escalated, "the ids from the file are used and listed"
    trail = json.loads((await acli(platform.env, "audit", f"{rid}-a", "--json")).stdout)
    assert trail["ticket"]["business_unit"] == f"east-{rid}"
    assert trail["ticket"]["metadata"] == {"tier": "gold"}

    help_text = (await acli(platform.env, "replay", "--help")).stdout
    for column in ("ticket_id", "body", "text", "business_unit", "metadata"):
        assert column in help_text


async def test_queue_list_pages_and_says_what_it_left_out(
    client: PlatformClient, platform: Platform, tmp_path: Path,
) -> None:
    rid, unit = fresh_unit("paged")
    ids = [f"{rid}-q{n}" for n in range(5)]
    await escalate(client, ids, unit)
    env = {**signed_in_env(platform, tmp_path, f"ana-{rid}", unit), "COLUMNS": "100"}
    first = await acli(env, "queue", "list", "--business-unit", unit, "--limit", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "showing 1-2 of 5; next page: pinworks queue list --offset 2 --limit 2" in first.stdout
    reasons_cut = [line for line in first.stdout.splitlines() if line.rstrip().endswith("…")]
    assert not reasons_cut, "reasons wrap instead of being cut"
    last = await acli(env, "queue", "list", "--business-unit", unit, "--limit", "2",
                      "--offset", "4")
    assert "showing 5-5 of 5" in last.stdout and "next page" not in last.stdout
    page = await acli(env, "queue", "list", "--business-unit", unit, "--limit", "2", "--json")
    assert len(json.loads(page.stdout)) == 2 and "showing 1-2 of 5" in page.stderr
    everything = json.loads((await acli(env, "queue", "list", "--business-unit", unit,
                                        "--json")).stdout)
    assert sorted(item["ticket_id"] for item in everything) == sorted(ids)


async def test_bench_leaves_no_trace_in_real_work(platform: Platform,
                                                  client: PlatformClient) -> None:
    benched = await asyncio.to_thread(cli, platform.env, "bench", "--count", "24",
                                      "--concurrency", "8", "--time-limit", "90",
                                      "--paced-count", "6", "--baseline-count", "6")
    assert benched.returncode == 0, benched.stdout + benched.stderr
    assert "outcomes 24" in benched.stdout, benched.stdout
    for figure in ("paced       20 tickets/s, 6/6 outcomes", "CPU/ticket", "in-process  6 "
                   "tickets", "overhead"):
        assert figure in benched.stdout, benched.stdout
    run = benched.stdout.split("bench run ", 1)[1].split()[0]
    assert f"cleaned up run {run}" in benched.stdout
    [charged] = await client.fetch(
        "SELECT count(*) AS n, min(business_unit) AS unit, bool_and(business_unit LIKE :u) AS own"
        " FROM cost_ledger WHERE ticket_id LIKE :p", p=f"bench-{run}-%", u=f"bench-{run}-%")
    assert charged.n > 0 and charged.own, "charged to the run's own units, never a real one"
    [submitted] = await client.fetch(
        "SELECT bool_and((metadata->>'synthetic')::boolean) AS synthetic FROM tickets "
        "WHERE ticket_id LIKE :p", p=f"bench-{run}-%")
    assert submitted.synthetic
    [queued] = await client.fetch("SELECT count(*) AS n FROM escalations WHERE ticket_id LIKE :p",
                                  p=f"bench-{run}-%")
    assert queued.n == 0, "the run's escalations left the queue"
    report = json.loads((await acli(platform.env, "report", "costs", "--format", "json")).stdout)
    assert not [row for row in report if row["business_unit"].startswith("bench-")]
    included = json.loads((await acli(platform.env, "report", "costs", "--format", "json",
                                      "--include-bench")).stdout)
    assert charged.unit in {row["business_unit"] for row in included}


async def test_infrastructure_failures_are_one_line(platform: Platform, tmp_path: Path) -> None:
    outside = {k: v for k, v in platform.env.items()
               if k not in ("NATS_URL", "DATABASE_URL", "ESCALATION_URL")}
    nowhere = await acli(outside, "agent", "list", cwd=tmp_path)
    assert nowhere.returncode == 2
    assert nowhere.stderr.count("\n") == 1 and "no platform to talk to" in nowhere.stderr
    assert "make run" in nowhere.stderr
    no_console = await acli(outside, "queue", "list", cwd=tmp_path)
    assert no_console.returncode == 2 and no_console.stderr.count("\n") == 1
    assert "no escalation console to talk to: ESCALATION_URL is not set" in no_console.stderr

    # Run from a subdirectory of a checkout whose `pinworks run` wrote .run/env: it is found.
    (tmp_path / ".run").mkdir()
    (tmp_path / ".run" / "env").write_text(
        f"export NATS_URL='{platform.nats_url}'\nexport DATABASE_URL='{platform.database_url}'\n")
    (tmp_path / "sub").mkdir()
    found = await acli(outside, "agent", "list", cwd=tmp_path / "sub")
    assert found.returncode == 0, found.stderr

    nats_down = await acli({**platform.env, "NATS_URL": "nats://127.0.0.1:9"}, "submit", "hi")
    assert nats_down.returncode == 2 and nats_down.stderr.count("\n") == 1, nats_down.stderr
    assert "cannot reach NATS at nats://127.0.0.1:9" in nats_down.stderr

    pg_down = await acli({**platform.env, "DATABASE_URL": "postgresql://pinworks:secret@127.0.0.1:9/x"},
                         "audit", "T-1")
    assert pg_down.returncode == 2 and pg_down.stderr.count("\n") == 1, pg_down.stderr
    assert "cannot reach Postgres at postgresql://pinworks:***@127.0.0.1:9/x" in pg_down.stderr

    from pinworks_devtools import drop_database, fresh_database

    bare_url = await fresh_database(platform.database_url, "bare")
    try:
        unmigrated = await acli({**platform.env, "DATABASE_URL": bare_url}, "agent", "list")
    finally:  # on a server DATABASE_URL names, the database would outlive the session
        await drop_database(platform.database_url, bare_url)
    assert unmigrated.returncode == 2 and unmigrated.stderr.count("\n") == 1, unmigrated.stderr
    assert "has no pinworks tables" in unmigrated.stderr
    assert "pinworks db upgrade" in unmigrated.stderr


def test_service_logs_are_json_lines_without_colour(platform: Platform) -> None:
    for name, process in platform.processes.items():
        text = process.log_text()
        assert "\x1b[" not in text, f"{name} wrote colour codes into its log file"
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines, f"{name} logged nothing"
        for line in lines:
            entry = json.loads(line)
            assert {"ts", "level", "message"} <= set(entry), line
        assert any(json.loads(line).get("service") == name for line in lines)


async def test_the_first_agent_from_inside_the_escalation_image(platform: Platform) -> None:
    """What the chart's NOTES tell an operator to run with `kubectl exec`."""
    name = f"first-{run_id()}"
    env = {**platform.env, "PINWORKS_AGENT_PASSWORD": "a long password"}
    created = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "pinworks_escalation.agents", "add", name,
        "--business-unit", "retail"], env=env, capture_output=True, text=True, timeout=60,
        check=False)
    assert created.returncode == 0, created.stderr
    assert f"agent {name} works retail" in created.stdout
    listed = await acli(platform.env, "agent", "list")
    assert f"{name}\tretail" in listed.stdout
    short = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "pinworks_escalation.agents", "add", name, "--business-unit", "x"],
        env={**env, "PINWORKS_AGENT_PASSWORD": "short"}, capture_output=True, text=True,
        timeout=60, check=False)
    assert short.returncode == 1 and "at least 8" in short.stderr
