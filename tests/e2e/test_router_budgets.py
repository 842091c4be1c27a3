"""Budgets hold across router processes racing on real Postgres; exhaustion takes the fallback."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pinworks_common.db.engine import create_engine
from pinworks_common.db.tables import decisions, router_budgets
from pinworks_contracts.subjects import ESCALATION_REQUESTED, routed_subject
from tests.conftest import Database

pytestmark = pytest.mark.integration

POLICY = """\
budgets:
  - business_unit: "*"
    handler: llm_frontier
    calls_per_day: {calls}
  - business_unit: "*"
    handler: kb
    usd_per_month: {kb_usd}
rules:
  - name: everything-frontier
    handler: llm_frontier
    fallbacks: [kb, human]
"""

# One router replica: its own process, engine and RouterStage, routing batches of tickets.
ROUTER = textwrap.dedent('''
    import asyncio, json, sys
    from datetime import UTC, datetime
    from opentelemetry.trace import INVALID_SPAN
    from pinworks_contracts.messages import Classification, TicketEnvelope, TicketSubmission
    from pinworks_common.db.engine import create_engine
    from pinworks_common.ledger.postgres import ledger_on
    from pinworks_common.stage import Work, record_batch
    from pinworks_router.policy import parse_policy
    from pinworks_router.stage import RouterStage

    url, unit, prefix, batches, size, policy_text = sys.argv[1:7]
    batches, size = int(batches), int(size)

    def work(i):
        envelope = TicketEnvelope(
            ticket=TicketSubmission(ticket_id=f"{prefix}-{i}", business_unit=unit,
                                    body="my card has not arrived"),
            trace_id="0" * 32, received_at=datetime.now(UTC),
            classification=Classification(intent="card_arrival", confidence=0.9,
                                          alternatives=[], out_of_scope=False, model_version="m"))
        return Work(delivery=None, value=envelope, span=INVALID_SPAN)

    async def main():
        engine = create_engine(url, pool_size=1)
        stage = RouterStage(parse_policy(policy_text))
        handlers = {}
        for b in range(batches):
            batch = [work(b * size + j) for j in range(size)]
            async with engine.begin() as conn:
                for publication in await record_batch(stage, ledger_on(conn), batch):
                    handlers[publication.subject] = handlers.get(publication.subject, 0) + 1
        await engine.dispose()
        print(json.dumps(handlers))

    asyncio.run(main())
''')


async def _replica(script: Path, *args: str) -> dict[str, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-3000:]
    result: dict[str, int] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@pytest.fixture
def replica_script(tmp_path: Path) -> Path:
    """The router replica program, written where a subprocess can run it."""
    script = tmp_path / "router_replica.py"
    script.write_text(ROUTER)
    return script


async def _rows(url: str, unit: str) -> tuple[list[Any], list[Any]]:
    engine = create_engine(url, pool_size=1)
    async with engine.connect() as conn:
        budgets = (await conn.execute(select(router_budgets).where(
            router_budgets.c.business_unit == unit))).all()
        routed = (await conn.execute(select(decisions.c.ticket_id, decisions.c.output).where(
            decisions.c.stage == "router", decisions.c.ticket_id.like(f"{unit}%")))).all()
    await engine.dispose()
    return budgets, routed


async def test_two_router_processes_never_exceed_a_budget(
    migrated_database_url: str, database: Database, replica_script: Path
) -> None:
    unit = f"bud-{uuid.uuid4().hex[:8]}"
    policy = POLICY.format(calls=23, kb_usd="0.02")  # kb costs 0.002 a ticket: 10 fit
    batches, size = 6, 8  # each replica routes 48 tickets; 96 want the frontier
    router = database.service_url("router")  # each replica connects as the router's role
    first, second = await asyncio.gather(
        _replica(replica_script, router, unit, f"{unit}-a", str(batches), str(size), policy),
        _replica(replica_script, router, unit, f"{unit}-b", str(batches), str(size), policy),
    )
    total = Counter(first) + Counter(second)
    assert sum(total.values()) == 96
    assert total == {routed_subject("llm_frontier"): 23, routed_subject("kb"): 10,
                     ESCALATION_REQUESTED: 96 - 33}
    budgets, routed = await _rows(migrated_database_url, unit)
    used = {(b.handler, b.kind): b.used for b in budgets}
    assert used[("llm_frontier", "calls_per_day")] == 23
    assert used[("kb", "usd_per_month")] == Decimal("0.02")
    assert all(b.used <= b.limit_amount for b in budgets)
    assert len(routed) == 96
    handlers = Counter(row.output["handler"] for row in routed)
    assert handlers == {"llm_frontier": 23, "kb": 10, "human": 63}
    # the audit says why a ticket did not get the rule's handler
    to_kb = next(row.output for row in routed if row.output["handler"] == "kb")
    assert to_kb["rule_handler"] == "llm_frontier"
    assert to_kb["budget_exhausted"][0]["handler"] == "llm_frontier"
    assert to_kb["budget_exhausted"][0]["used"] == "23"
    assert "budget: llm_frontier calls_per_day exhausted (23/23); took fallback kb" in to_kb[
        "reason"]
    assert to_kb["fallbacks"] == ["human"]
    to_person = next(row.output for row in routed if row.output["handler"] == "human")
    assert [e["handler"] for e in to_person["budget_exhausted"]] == ["llm_frontier", "kb"]


async def test_a_redelivered_batch_is_not_charged_twice(
    migrated_database_url: str, database: Database, replica_script: Path
) -> None:
    unit = f"bud-{uuid.uuid4().hex[:8]}"
    policy = POLICY.format(calls=5, kb_usd="1")
    args = (database.service_url("router"), unit, f"{unit}-a", "1", "3", policy)
    assert await _replica(replica_script, *args) == {routed_subject("llm_frontier"): 3}
    # the same three tickets again (a redelivery after commit): same decisions, no new charge
    assert await _replica(replica_script, *args) == {routed_subject("llm_frontier"): 3}
    budgets, _ = await _rows(migrated_database_url, unit)
    assert {(b.handler, b.kind): b.used for b in budgets}[("llm_frontier", "calls_per_day")] == 3
