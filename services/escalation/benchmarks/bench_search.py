"""Benchmark the queue's search before and after its trigram index (migrations 0015, 0016): the plan
Postgres chooses for the console's search (`listing.list_queue` with a search text, the
statement exactly as the console sends it, with its parameters) and its time, on a queue of
`--rows` escalations whose bodies are BANKING77 texts (and 1,000 more written after the index,
as a live queue's are), first at migration 0014 (no index), then at head; and the time to write
an escalation without and with the index.

Postgres: `DATABASE_URL` (a database of its own is created there and dropped), else an embedded
server in a temporary directory.

Usage: .venv/bin/python services/escalation/benchmarks/bench_search.py [--rows 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from pinworks_common.db.engine import create_engine
from pinworks_common.db.migrate import upgrade
from pinworks_common.db.tables import escalations
from pinworks_devtools import drop_database, fresh_database, resolve_database
from pinworks_escalation.queue import listing
from pinworks_escalation.queue.listing import QueueQuery, list_queue

ROOT = Path(__file__).resolve().parents[3]
TEXTS = ROOT / "services/classifier/data/banking77/train.csv"
UNITS = ("retail", "cards", "loans", "business", "wealth")
SEARCHES = (
    ("ticket id", "S-004242", "all"),
    ("customer id", "C-01232", "all"),
    ("word", "refund", "active"),
    ("phrase", "still hasn't arrived", "active"),
    ("absent", "zebra crossing", "all"),
    ("two letters", "pi", "active"),
)
"""(what, search text, status filter): the console's search over the active queue or all of it."""
TIMED_RUNS = 7


def rows(count: int) -> list[dict[str, Any]]:
    with TEXTS.open(newline="") as handle:
        texts = [(row["text"], row["category"]) for row in csv.DictReader(handle)]
    now = datetime.now(UTC)
    made = []
    for n in range(count):
        body, intent = texts[n % len(texts)]
        ticket_id = f"S-{n:06d}"
        ticket = {"ticket_id": ticket_id, "business_unit": UNITS[n % len(UNITS)], "body": body,
                  "subject": intent.replace("_", " "), "customer_id": f"C-{n * 7 % 100_000:05d}"}
        made.append({
            "ticket_id": ticket_id, "business_unit": ticket["business_unit"],
            "status": "open" if n % 10 < 3 else "resolved", "priority": n % 4,
            "source_stage": "router", "reasons": ["low confidence"],
            "context": {"envelope": {"ticket": ticket, "classification": {"intent": intent}}},
            "sla_due_at": now + timedelta(minutes=n % 240),
        })
    return made


async def explain(conn: AsyncConnection, query: QueueQuery, units: list[str], *,
                  generic: bool = False) -> tuple[str, float]:
    """The plan and server-side execution milliseconds (median of TIMED_RUNS EXPLAIN ANALYZE)
    of the statement `list_queue` sends, with its parameters bound as the driver binds them;
    `generic`: the plan a prepared statement gets once Postgres stops planning it for each
    execution's values (plan_cache_mode = force_generic_plan)."""
    compiled = listing.page_statement(query, units).compile(dialect=conn.dialect,
                                               compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[name] for name in compiled.positiontup)
    sql = compiled.string
    if generic:
        await conn.execute(text("SET plan_cache_mode = force_generic_plan"))
        await conn.exec_driver_sql(f"PREPARE search AS {sql}")
        sql = "EXECUTE search(" + ", ".join(map(_literal, params)) + ")"
        params = ()
    plans, times = [], []
    for _ in range(TIMED_RUNS):
        lines = [line for (line,) in await conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {sql}", params)]
        times.append(float(next(line for line in lines if line.startswith("Execution Time"))
                           .split()[2]))
        plans.append("\n".join(line for line in lines if not line.endswith(" ms")))
    if generic:
        await conn.exec_driver_sql("DEALLOCATE search")
        await conn.execute(text("RESET plan_cache_mode"))
    return plans[-1], statistics.median(times)


def _literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def timed(conn: AsyncConnection, query: QueueQuery, units: list[str]) -> float:
    """Median milliseconds of the whole call as the console makes it (driver, rows decoded,
    queue items built): this process's share is most of it at these sizes."""
    times = []
    for _ in range(TIMED_RUNS):
        started = time.perf_counter()
        await list_queue(conn, business_units=units, query=query)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def measure(url: str, label: str) -> dict[str, tuple[float, float]]:
    engine = create_engine(url, pool_size=1)
    results = {}
    try:
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE escalations"))
            units = list(UNITS[:3])  # an agent of three units, as the console scopes it
            print(f"\n=== {label} ===")
            for what, search, status in SEARCHES:
                query = QueueQuery(search=search, status=status, limit=50)
                plan, server = await explain(conn, query, units)
                results[what] = (server, await timed(conn, query, units))
                print(f"\n--- {what}: {search!r} (status {status}): execution {server:.3f} ms "
                      f"(median of {TIMED_RUNS}), the whole call {results[what][1]:.2f} ms ---"
                      f"\n{plan}")
            query = QueueQuery(search="still hasn't arrived", status="active", limit=50)
            plan, server = await explain(conn, query, units, generic=True)
            print(f"\n--- phrase, generic plan (a prepared statement's, planned without its "
                  f"values): execution {server:.3f} ms ---\n{plan}")
    finally:
        await engine.dispose()
    return results


async def load(url: str, made: list[dict[str, Any]]) -> float:
    """Milliseconds per escalation written, 1,000 to a statement."""
    engine = create_engine(url, pool_size=1)
    try:
        started = time.perf_counter()
        async with engine.begin() as conn:
            for start in range(0, len(made), 1000):
                await conn.execute(insert(escalations), made[start:start + 1000])
        return (time.perf_counter() - started) * 1000 / len(made)
    finally:
        await engine.dispose()


async def index_size(url: str) -> str:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return str((await conn.execute(text(
                "SELECT pg_size_pretty(pg_relation_size('escalations_search_trigrams'))"
                " || ' index, table ' || pg_size_pretty(pg_total_relation_size('escalations'))"
            ))).scalar_one())
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as workdir:
        endpoint = resolve_database(Path(workdir), allow_docker=False)
        own = endpoint.source.startswith("environment")
        url = endpoint.url
        try:
            if own:
                url = asyncio.run(fresh_database(endpoint.url, "pinworks_bench_search"))
            print(f"Postgres: {endpoint.source}; {args.rows} escalations; load average "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            upgrade(url, "0014")
            made = rows(args.rows + 2000)
            asyncio.run(load(url, made[:args.rows]))
            write_before = asyncio.run(load(url, made[args.rows:args.rows + 1000]))
            indexed_from = listing.TRIGRAM
            listing.TRIGRAM = 10**9  # the statement as before: no search is indexed
            before = asyncio.run(measure(url, "before: migration 0014, no search index"))
            listing.TRIGRAM = indexed_from
            upgrade(url)
            write_after = asyncio.run(load(url, made[args.rows + 1000:]))
            after = asyncio.run(measure(url, "after: head, escalations_search_trigrams"))
            print(f"\nindex: {asyncio.run(index_size(url))}")
            print("\nmilliseconds, median of 7: Postgres's execution (EXPLAIN ANALYZE) and the "
                  "whole list_queue call")
            print(f"{'search':<14}{'before':>10}{'after':>10}{'call before':>14}"
                  f"{'call after':>12}")
            for what in before:
                print(f"{what:<14}{before[what][0]:>10.3f}{after[what][0]:>10.3f}"
                      f"{before[what][1]:>14.2f}{after[what][1]:>12.2f}")
            print(f"writing an escalation (1,000 to a statement): {write_before:.3f} ms before, "
                  f"{write_after:.3f} ms with the index")
            print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        finally:
            if own and url != endpoint.url:
                asyncio.run(drop_database(endpoint.url, url))
            endpoint.close()


if __name__ == "__main__":
    main()
