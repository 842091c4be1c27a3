"""Benchmark what the queue-search index costs Postgres per escalation written: the CPU of the
Postgres backend (its utime + stime from /proc) while it stores escalation rows the way the
escalation stage does (`queue_row` of `pinworks bench`'s tickets, written by the ledger's
`supersede` in batches, one transaction each), at migration 0014 (no search index), 0015 (text
trigrams from `generate_series`) and head, in rounds that alternate the revisions (the machine
is shared: compare ranges). For each indexed revision it also prints the CPU of computing the
index expression alone over the same rows (a SELECT), so the rest of the difference to 0014 is
GIN's: pending-list inserts, their flushes into the entry tree, WAL.

Each revision gets a fresh database with `--prefill` rows written first (an index with entries,
as a live queue's), then `--rows` measured. Postgres: `DATABASE_URL` (databases of its own are
created there and dropped; the server must run on this machine, its backend's CPU is read from
/proc), else an embedded server in a temporary directory.

Usage: .venv/bin/python services/escalation/benchmarks/bench_search_writes.py
           [--rows 3000] [--prefill 3000] [--batch 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from pinworks_cli.bench import make_ticket
from pinworks_common.customer_state import CustomerStateReader
from pinworks_common.db.engine import create_engine
from pinworks_common.db.migrate import upgrade
from pinworks_common.ledger.postgres import PostgresStore
from pinworks_contracts.messages import (
    Classification,
    EscalationRequest,
    RouteDecision,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_devtools import drop_database, fresh_database, resolve_database
from pinworks_escalation.queue.priority import queue_row

REVISIONS = (
    ("0014", "no search index"),
    ("0015", "text trigrams, generate_series"),
    ("head", "head"),
)
"""(revision, what its search index is)."""
UNITS = ("retail", "cards", "loans")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu_ms(pid: int) -> float:
    """User + system CPU of process `pid` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / CLOCK_TICKS


def escalation_rows(start: int, count: int) -> list[dict[str, Any]]:
    """The queue rows of `pinworks bench`'s tickets `start`.. (its texts, ids and metadata),
    each routed to a person, as `EscalationStage.apply` builds them."""
    reader, now, rows = CustomerStateReader(), datetime.now(UTC), []
    classification = Classification(intent="card_arrival", confidence=0.6, alternatives=[],
                                    out_of_scope=False, model_version="bench")
    route = RouteDecision(handler="human", rule="gate", reason="low confidence",
                          policy_version="bench", fallbacks=[])
    for n in range(start, start + count):
        ticket = TicketSubmission.model_validate(make_ticket("writes", n, UNITS))
        envelope = TicketEnvelope(ticket=ticket, trace_id=f"{n:032x}", received_at=now,
                                  classification=classification, route=route)
        request = EscalationRequest(envelope=envelope, source_stage="router",
                                    reasons=["low confidence"])
        rows.append(queue_row(request, reader.read(ticket.subject, ticket.body), now))
    return rows


async def write(engine: AsyncEngine, rows: list[dict[str, Any]], batch: int) -> float:
    """Backend CPU-ms per row of writing `rows`, `batch` to a transaction, as the stage does."""
    async with engine.connect() as conn:
        pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        await conn.commit()
        started = backend_cpu_ms(pid)
        for start in range(0, len(rows), batch):
            async with conn.begin():
                await PostgresStore(conn).supersede(
                    "escalations", rows[start:start + batch], version="attempt",
                    keep=("business_unit", "trace_id"), merge=("context",),
                    clear=("claimed_by", "lease_expires_at"))
        return (backend_cpu_ms(pid) - started) / len(rows)


async def expression_cost(engine: AsyncEngine) -> float:
    """Backend CPU-ms per stored row of computing the index expression alone."""
    async with engine.connect() as conn:
        pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        started = backend_cpu_ms(pid)
        count = (await conn.execute(text(
            "SELECT count(*) FROM escalations WHERE cardinality("
            "pinworks_escalation_trigrams(ticket_id, context)) >= 0"))).scalar_one()
        return (backend_cpu_ms(pid) - started) / int(count)


async def one_revision(server_url: str, revision: str, rows: list[dict[str, Any]],
                       prefill: int, batch: int) -> tuple[float, float | None]:
    url = await fresh_database(server_url, "pinworks_bench_search_writes")
    try:
        await asyncio.to_thread(upgrade, url, revision)
        engine = create_engine(url, pool_size=1)
        try:
            await write(engine, rows[:prefill], 128)
            per_row = await write(engine, rows[prefill:], batch)
            expression = None if revision == "0014" else await expression_cost(engine)
            return per_row, expression
        finally:
            await engine.dispose()
    finally:
        await drop_database(server_url, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--prefill", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = escalation_rows(0, args.prefill + args.rows)
    with tempfile.TemporaryDirectory(prefix="bench-search-writes-") as workdir:
        endpoint = resolve_database(Path(workdir), allow_docker=False)
        try:
            host = make_url(endpoint.url).host
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise SystemExit(f"Postgres at {host}: its backends' CPU is not in this /proc")
            print(f"Postgres: {endpoint.source}; {args.prefill} rows, then {args.rows} measured "
                  f"in batches of {args.batch}; load average "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            results: dict[str, list[tuple[float, float | None]]] = {r: [] for r, _ in REVISIONS}
            for round_ in range(args.rounds):
                for revision, _ in REVISIONS:
                    result = asyncio.run(one_revision(endpoint.url, revision, rows,
                                                      args.prefill, args.batch))
                    results[revision].append(result)
                    print(f"round {round_ + 1} {revision}: {result[0]:.3f} CPU-ms per row")
            base = statistics.median(total for total, _ in results["0014"])
            print("\nPostgres backend CPU-ms per escalation written (min-max of the rounds, "
                  "median); the index's share beyond 0014's median, and of it the expression's")
            for revision, what in REVISIONS:
                totals = [total for total, _ in results[revision]]
                line = (f"{revision:<5} {what:<32} {min(totals):.3f}-{max(totals):.3f} "
                        f"(median {statistics.median(totals):.3f})")
                expressions = [e for _, e in results[revision] if e is not None]
                if expressions:
                    index = statistics.median(totals) - base
                    expression = statistics.median(expressions)
                    line += (f"  index +{index:.3f}: expression {expression:.3f}, "
                             f"GIN and the rest {index - expression:.3f}")
                print(line)
            print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        finally:
            endpoint.close()


if __name__ == "__main__":
    main()
