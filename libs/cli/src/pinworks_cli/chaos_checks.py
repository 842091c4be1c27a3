"""What `pinworks chaos` checks once the platform has drained, from the outcomes stream and
Postgres: nothing lost, nothing duplicated, no ticket charged twice, exactly one outcome per
accepted ticket, every hostile payload recorded in `rejected_payloads` and every readable id
rejected with a reason, no dead letters, and the drain time bound."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import text

from pinworks_cli.chaos_platform import Platform
from pinworks_cli.hostile import HostilePayload
from pinworks_common.db.engine import create_engine
from pinworks_common.nats_client import connect_options
from pinworks_contracts.identities import OPERATOR
from pinworks_contracts.subjects import OUTCOME_WILDCARD, OUTCOMES_STREAM
from pinworks_devtools import EmbeddedNats


@dataclass
class Sent:
    """What the load generator got acknowledged by JetStream."""

    normal: dict[str, int] = field(default_factory=dict)
    hostile: list[tuple[HostilePayload, int]] = field(default_factory=list)
    resubmitted: int = 0
    publish_retries: int = 0
    last_ack: float = 0.0


@dataclass
class ChaosReport:
    figures: dict[str, Any]
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures

    def format(self) -> str:
        lines = ["pinworks chaos"]
        lines += [f"  {key:<34} {value}" for key, value in self.figures.items()]
        lines.append("  result: " + ("PASS" if self.passed else "FAIL"))
        lines += [f"    - {failure}" for failure in self.failures]
        return "\n".join(lines)


async def _ignore(error: Exception) -> None:
    """The NATS restart is ours: the client's reconnect errors are expected."""


async def connect(server: EmbeddedNats) -> nats.NATS:
    """The chaos driver's connection to its own platform's NATS, as the operator identity."""
    return await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                              connect_timeout=5, error_cb=_ignore,
                              **connect_options(server.client_env(OPERATOR)))


async def _owed_without_outcome(engine: Any, ids: list[str]) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT DISTINCT ticket_id FROM outcomes WHERE ticket_id = ANY(:ids)"), {"ids": ids})
        done = set(rows.scalars())
    return [ticket_id for ticket_id in ids if ticket_id not in done]


async def wait_drained(engine: Any, ids: list[str], limit: float) -> tuple[float, list[str]]:
    """Seconds until every id has an outcome in Postgres (or the ids still missing at `limit`)."""
    started = time.monotonic()
    missing = ids
    while time.monotonic() - started < limit:
        try:
            missing = await _owed_without_outcome(engine, missing)
        except Exception:  # noqa: BLE001 - the database may still be coming back
            await asyncio.sleep(1)
            continue
        if not missing:
            break
        await asyncio.sleep(1)
    return time.monotonic() - started, missing


async def _stream_outcomes(server: EmbeddedNats, prefixes: tuple[str, ...]
                           ) -> dict[str, list[dict[str, Any]]]:
    """Every outcome the outcomes stream holds for this run's tickets."""
    nc = await connect(server)
    by_ticket: dict[str, list[dict[str, Any]]] = defaultdict(list)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(OUTCOMES_STREAM)).state.messages
        subscription = await js.pull_subscribe(
            OUTCOME_WILDCARD, stream=OUTCOMES_STREAM,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE))
        read = 0
        while read < total:
            try:
                messages = await subscription.fetch(1000, timeout=5)
            except nats.errors.TimeoutError:
                break
            for message in messages:
                read += 1
                outcome = json.loads(message.data)
                if str(outcome.get("ticket_id", "")).startswith(prefixes):
                    by_ticket[outcome["ticket_id"]].append(outcome)
    finally:
        await nc.close()
    return by_ticket


@dataclass
class Evidence:
    """What the outcomes stream and Postgres hold about one run's tickets."""

    streamed: dict[str, list[dict[str, Any]]]
    stored: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    charges: list[Any] = field(default_factory=list)
    rejected_seqs: set[int] = field(default_factory=set)
    dead: list[Any] = field(default_factory=list)


async def read_evidence(platform: Platform, run_id: str, sent: Sent) -> Evidence:
    run_tickets = {"a": f"bench-{run_id}-%", "b": f"hostile-{run_id}-%"}
    evidence = Evidence(await _stream_outcomes(
        platform.nats, (f"bench-{run_id}-", f"hostile-{run_id}-")))
    engine = create_engine(platform.postgres.url, pool_size=2)
    try:
        async with engine.connect() as conn:
            for row in (await conn.execute(text(
                    "SELECT ticket_id, status, payload FROM outcomes "
                    "WHERE ticket_id LIKE :a OR ticket_id LIKE :b"), run_tickets)).all():
                evidence.stored[row.ticket_id].append(row)
            evidence.charges = list((await conn.execute(text(
                "SELECT ticket_id, entry_key, count(*) AS n, sum(amount_usd) AS total "
                "FROM cost_ledger WHERE ticket_id LIKE :a OR ticket_id LIKE :b "
                "GROUP BY ticket_id, entry_key"), run_tickets)).all())
            evidence.rejected_seqs = set((await conn.execute(text(
                "SELECT stream_seq FROM rejected_payloads WHERE stream_seq = ANY(:seqs) "
                "AND jsonb_array_length(reasons) > 0"),
                {"seqs": [seq for _, seq in sent.hostile]})).scalars())
            evidence.dead = list((await conn.execute(text(
                "SELECT stage, error FROM dead_letters WHERE ticket_id LIKE :a OR "
                "ticket_id LIKE :b"), run_tickets)).all())
    finally:
        await engine.dispose()
    return evidence


@dataclass
class Findings:
    """What went wrong, item by item (every list empty: the run passed these checks)."""

    owed_rejections: list[HostilePayload]
    lost: list[str]
    duplicated: list[str]
    twice: list[Any]
    cost_mismatch: list[str]
    wrongly_rejected: list[str]
    not_rejected: list[HostilePayload]
    no_row: list[str]


def find_problems(evidence: Evidence, sent: Sent) -> Findings:
    streamed, stored = evidence.streamed, evidence.stored
    accepted = list(sent.normal) + [e.ticket_id for e, _ in sent.hostile
                                    if e.expect == "accept" and e.ticket_id]
    owed_rejections = [e for e, _ in sent.hostile if e.expect == "reject" and e.ticket_id]
    owed = accepted + [e.ticket_id for e in owed_rejections if e.ticket_id]
    ledger: defaultdict[str, Decimal] = defaultdict(Decimal)
    for row in evidence.charges:
        ledger[row.ticket_id] += Decimal(str(row.total))
    return Findings(
        owed_rejections=owed_rejections,
        lost=[t for t in owed if not streamed.get(t) or not stored.get(t)],
        duplicated=[t for t in owed if len(streamed.get(t, [])) > 1 or len(stored.get(t, [])) > 1],
        twice=[row for row in evidence.charges if row.n > 1],
        cost_mismatch=[
            t for t in accepted if stored.get(t)
            and abs(Decimal(str(stored[t][0].payload["cost_usd"])) - ledger[t]) > Decimal("0.000001")
        ],
        wrongly_rejected=[t for t in accepted
                          if any(r.status == "rejected" for r in stored.get(t, []))],
        not_rejected=[
            e for e in owed_rejections if e.ticket_id and (not stored.get(e.ticket_id) or any(
                r.status != "rejected" or not r.payload.get("reasons")
                for r in stored[e.ticket_id]))
        ],
        no_row=[e.kind for e, seq in sent.hostile
                if e.expect == "reject" and seq not in evidence.rejected_seqs],
    )


async def verify(platform: Platform, run_id: str, sent: Sent, drain_seconds: float,
                 drain_missing: list[str], drain_bound: float, killed: Iterable[str]
                 ) -> ChaosReport:
    """The run's figures and every check it failed."""
    evidence = await read_evidence(platform, run_id, sent)
    found = find_problems(evidence, sent)
    statuses = Counter(rows[0].status for t, rows in evidence.stored.items() if rows)
    figures: dict[str, Any] = {
        "normal tickets accepted by JetStream": len(sent.normal),
        "client resubmissions (new msg id)": sent.resubmitted,
        "hostile payloads sent": len(sent.hostile),
        "  of which odd but valid (accept)": sum(e.expect == "accept" for e, _ in sent.hostile),
        "  of which readable id (rejected)": len(found.owed_rejections),
        "publish retries during faults": sent.publish_retries,
        "outcomes by status": dict(sorted(statuses.items())),
        "lost (no outcome)": len(found.lost),
        "duplicated outcomes": len(found.duplicated),
        "double charges": len(found.twice),
        "outcome cost != ledger": len(found.cost_mismatch),
        "accepted but rejected": len(found.wrongly_rejected),
        "readable malformed id not rejected": len(found.not_rejected),
        "hostile without rejected_payloads row": len(found.no_row),
        "dead letters": len(evidence.dead),
        "drain after last publish (s)": round(drain_seconds, 1),
        "drain bound (s)": drain_bound,
        "service starts": {name: p.starts for name, p in platform.processes.items()},
    }
    failures = _failures(found, evidence.dead)
    if drain_missing:
        failures.append(f"{len(drain_missing)} without an outcome at the drain bound")
    if drain_seconds > drain_bound:
        failures.append(f"drain took {drain_seconds:.0f}s > {drain_bound:.0f}s")
    unrestarted = [name for name in killed if platform.processes[name].starts < 2]
    if unrestarted:
        failures.append(f"not restarted by the supervisor: {unrestarted}")
    return ChaosReport(figures, failures)


def _failures(found: Findings, dead: list[Any]) -> list[str]:
    checks: list[tuple[Sequence[Any], str]] = [
        (found.lost, "lost"), (found.duplicated, "duplicated"), (found.twice, "charged twice"),
        (found.cost_mismatch, "outcome cost differs from the ledger"),
        (found.wrongly_rejected, "accepted tickets rejected"),
        ([e.kind for e in found.not_rejected], "readable malformed ids without a rejected outcome"),
        (found.no_row, "hostile payloads without a rejected_payloads row"),
        ([f"{row.stage}: {row.error[:120]}" for row in dead], "dead letters"),
    ]
    return [f"{len(items)} {what}: {list(items[:5])}" for items, what in checks if items]
