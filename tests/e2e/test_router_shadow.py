"""A shadow policy runs beside the live one on real traffic: recorded, compared, never acted on."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nats.js.kv import KeyValue
from opentelemetry.trace import INVALID_SPAN
from sqlalchemy import select
from typer.testing import CliRunner

from pinworks_cli.main import app
from pinworks_common.db.engine import create_engine
from pinworks_common.db.tables import decisions
from pinworks_common.ledger.postgres import ledger_on
from pinworks_common.stage import Work, record_batch
from pinworks_contracts.messages import Classification, IntentScore, TicketEnvelope, TicketSubmission
from pinworks_contracts.subjects import ESCALATION_REQUESTED, routed_subject
from pinworks_router.policy import parse_policy
from pinworks_router.policy_trust import PolicyRecords
from pinworks_router.rollout import PolicyWatcher, ShadowHolder
from pinworks_router.stage import SHADOW_STAGE, RouterStage

pytestmark = pytest.mark.integration

LIVE = "rules:\n  - name: all-template\n    handler: template\n    fallbacks: [human]\n"
CANDIDATE = """\
rules:
  - name: vip-frontier
    when: {metadata: {tier: [vip]}}
    handler: llm_frontier
  - name: rest-template
    handler: template
"""


def work(ticket_id: str, **metadata: str) -> Work[TicketEnvelope]:
    envelope = TicketEnvelope(
        ticket=TicketSubmission(ticket_id=ticket_id, business_unit="retail",
                                body="my card has not arrived", metadata=metadata),
        trace_id="0" * 32, received_at=datetime.now(UTC),
        classification=Classification(intent="card_arrival", confidence=0.9, out_of_scope=False,
                                      alternatives=[IntentScore(intent="card_arrival", score=0.9)],
                                      model_version="m"))
    return Work(delivery=None, value=envelope, span=INVALID_SPAN)  # type: ignore[arg-type]


async def test_shadow_decisions_are_recorded_and_never_acted_on(
    live_policy_bucket: tuple[KeyValue, str], policy_records: PolicyRecords,
    migrated_database_url: str, tmp_path: Path,
) -> None:
    kv, bucket = live_policy_bucket
    candidate_file = tmp_path / "candidate.yaml"
    candidate_file.write_text(CANDIDATE)
    shadow = ShadowHolder()
    stage = RouterStage(parse_policy(LIVE), shadow=shadow)
    watcher = PolicyWatcher(kv, shadow, policy_records, bucket, "shadow")
    await watcher.start()
    engine = create_engine(migrated_database_url, pool_size=1)
    prefix = f"shadow-{uuid.uuid4().hex[:8]}"
    try:
        result = await asyncio.to_thread(CliRunner().invoke, app, [
            "policy", "apply", str(candidate_file), "--shadow", "--bucket", bucket])
        assert result.exit_code == 0, result.output
        assert "as shadow policy" in result.output
        await shadow.wait_for(lambda h: h.policy is not None, 10)

        batch = [work(f"{prefix}-1", tier="vip"), work(f"{prefix}-2", tier="basic"),
                 work(f"{prefix}-3")]
        async with engine.begin() as conn:
            publications = await record_batch(stage, ledger_on(conn), batch)
        # the live policy acts: everything to the template handler
        assert [p.subject for p in publications] == [routed_subject("template")] * 3
        async with engine.connect() as conn:
            rows = (await conn.execute(select(decisions).where(
                decisions.c.stage == SHADOW_STAGE, decisions.c.ticket_id.like(f"{prefix}%"))
                .order_by(decisions.c.ticket_id))).all()
        assert [r.output["handler"] for r in rows] == ["llm_frontier", "template", "template"]
        assert [r.output["agrees"] for r in rows] == [False, True, True]
        assert rows[0].version == parse_policy(CANDIDATE).version
        assert rows[0].inputs["live_handler"] == "template"
        assert "shadow disagrees" in rows[0].reason and "not acted on" in rows[0].reason

        report = await asyncio.to_thread(CliRunner().invoke, app, ["policy", "shadow-report"])
        assert report.exit_code == 0, report.output
        assert f"shadow {parse_policy(CANDIDATE).version}" in report.output
        assert "template -> llm_frontier" in report.output

        cleared = await asyncio.to_thread(CliRunner().invoke, app, [
            "policy", "shadow-clear", "--bucket", bucket])
        assert cleared.exit_code == 0, cleared.output
        await shadow.wait_for(lambda h: h.policy is None, 10)
        async with engine.begin() as conn:
            publications = await record_batch(stage, ledger_on(conn), [work(f"{prefix}-4", tier="vip")])
        assert publications[0].subject == routed_subject("template")
        async with engine.connect() as conn:
            later = (await conn.execute(select(decisions.c.ticket_id).where(
                decisions.c.stage == SHADOW_STAGE,
                decisions.c.ticket_id == f"{prefix}-4"))).all()
        assert later == []
        assert ESCALATION_REQUESTED not in {p.subject for p in publications}
    finally:
        await watcher.stop()
        await engine.dispose()
