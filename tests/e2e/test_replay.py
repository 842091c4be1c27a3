"""`pinworks replay`: many tickets from a CSV, with a closing summary per business unit."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, Platform, run_id

pytestmark = pytest.mark.e2e


async def test_replay_submits_a_csv_and_summarises_outcomes_and_cost(
    platform: Platform, tmp_path: Path,
) -> None:
    rid = run_id()
    path = tmp_path / f"replay-{rid}.csv"
    rows = [
        {"ticket_id": f"{rid}-r1", "business_unit": f"north-{rid}",
         "body": "How do I change my PIN?"},
        {"ticket_id": f"{rid}-r2", "business_unit": f"north-{rid}",
         "body": "My top up failed this morning, why?"},
        {"ticket_id": f"{rid}-r3", "business_unit": f"south-{rid}",
         "body": "Which restaurants near the office are open late?"},
    ]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["ticket_id", "business_unit", "body"])
        writer.writeheader()
        writer.writerows(rows)
    completed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "pinworks_cli", "replay", str(path), "--wait", "90"],
        env={**platform.env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=120,
        cwd=ROOT, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "3/3 outcomes" in completed.stdout
    assert f"north-{rid}" in completed.stdout and f"south-{rid}" in completed.stdout
    assert "escalated: 1, resolved: 2" in completed.stdout
