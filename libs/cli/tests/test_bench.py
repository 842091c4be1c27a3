"""Bench statistics as pure functions, plus one run against a real embedded nats-server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nats
import pytest

from pinworks_cli.bench import make_ticket, run_bench
from pinworks_cli.bench_figures import (
    BenchResult,
    format_result,
    percentile,
    throughput,
)
from pinworks_common.streams import declare_streams
from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_contracts.subjects import SUBMITTED_WILDCARD, outcome_subject
from pinworks_devtools import EmbeddedNats


def test_percentile_interpolates_like_numpy() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_throughput_is_completed_over_first_publish_to_last_outcome() -> None:
    assert throughput(100, 10.0, 20.0) == pytest.approx(10.0)
    assert throughput(0, 10.0, 20.0) == 0.0
    assert throughput(5, None, 20.0) == 0.0
    assert throughput(5, 10.0, 10.0) == 0.0


def test_result_statistics_and_report() -> None:
    result = BenchResult(
        run_id="abc",
        requested=5,
        published=4,
        publish_errors=1,
        first_publish=100.0,
        last_outcome=102.0,
        latencies=[0.1, 0.2, 0.3],
        statuses={"resolved": 2, "escalated": 1},
        missing=["bench-abc-3"],
    )
    assert result.received == 3
    assert result.throughput == pytest.approx(1.5)
    assert result.p50 == pytest.approx(0.2)
    assert result.max_latency == pytest.approx(0.3)
    report = format_result(result)
    assert "1.50 tickets/s" in report
    assert "p50 200.0 ms" in report
    assert "escalated=1, resolved=2" in report
    assert "1 without an outcome bench-abc-3" in report


def test_tickets_are_unique_and_follow_the_contract() -> None:
    tickets = [make_ticket("r1", n, ["retail", "business"]) for n in range(30)]
    assert len({t["ticket_id"] for t in tickets}) == 30
    assert tickets[7]["ticket_id"] == "bench-r1-7"
    assert {t["business_unit"] for t in tickets} == {"retail", "business"}
    assert len({t["body"] for t in tickets}) > 5
    for ticket in tickets:
        assert set(ticket) == {
            "ticket_id",
            "business_unit",
            "body",
            "subject",
            "channel",
            "metadata",
        }


async def test_run_bench_against_a_fake_pipeline(tmp_path: Path) -> None:
    """A stand-in pipeline answers all but one ticket; the bench must still end and say so."""
    with EmbeddedNats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await declare_streams(js)
        seen_ids: list[str] = []

        async def pipeline(msg) -> None:
            seen_ids.append(msg.headers["Nats-Msg-Id"])
            ticket = json.loads(msg.data)
            await msg.ack()
            if ticket["ticket_id"].endswith("-4"):
                return
            status = "escalated" if ticket["ticket_id"].endswith("-2") else "resolved"
            outcome = {"ticket_id": ticket["ticket_id"], "status": status}
            await nc.publish(outcome_subject(status, DEFAULT_PLATFORM), json.dumps(outcome).encode())

        await js.subscribe(SUBMITTED_WILDCARD, cb=pipeline, durable="fake", manual_ack=True)
        try:
            result = await run_bench(
                server.url,
                count=10,
                concurrency=3,
                business_units=["retail"],
                time_limit=3.0,
                run_id="t1",
            )
        finally:
            await nc.drain()

    assert result.published == 10
    assert result.received == 9
    assert result.missing == ["bench-t1-4"]
    assert result.statuses == {"resolved": 8, "escalated": 1}
    assert result.answered_by == {f"bench-t1-{n}": "human" if n == 2 else "?"
                                  for n in range(10) if n != 4}
    assert result.throughput > 0
    assert sorted(seen_ids)[0] == "bench-t1-0:submitted"
    assert all(latency >= 0 for latency in result.latencies)


async def test_run_bench_stops_when_nothing_answers(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        await declare_streams(nc.jetstream())
        await nc.close()
        started = asyncio.get_running_loop().time()
        result = await run_bench(
            server.url, count=5, concurrency=2, business_units=["retail"], time_limit=1.0
        )
        assert asyncio.get_running_loop().time() - started < 10
    assert result.received == 0
    assert result.timed_out
    assert result.published == 2
    assert "timed out" in format_result(result)


def test_model_hops_report_latency_tokens_per_second_and_verified_share() -> None:
    from pinworks_cli.bench_figures import ModelCall, ModelHops, format_model_hops, summarise_calls

    calls = [
        ModelCall("llm_small", 2000.0, 500, 100, False, drafted=True, resolved=True),
        ModelCall("llm_small", 4000.0, 700, 100, False, drafted=True, resolved=False),
        ModelCall("llm_small", 50.0, 0, 0, False, drafted=False, resolved=False),
    ]
    m = summarise_calls(calls)
    assert m["calls"] == 3 and m["drafted"] == 2 and m["verified"] == 1
    assert m["tokens_per_s"] == pytest.approx(200 / 6.0), "output tokens over the producing calls' time"
    assert m["p50_s"] == pytest.approx(2.0)
    lines = format_model_hops(ModelHops(calls))
    assert "llm_small   3 calls, latency p50 2000.0 ms" in lines[0]
    assert "generation 33.3 tokens/s" in lines[0]
    assert "verified and sent 1/3 (33%)" in lines[1]
    assert format_model_hops(ModelHops()) == [
        "  model hops  none (no ticket of this run was tried by a model)"]


def test_the_report_gives_each_handlers_share() -> None:
    result = BenchResult(run_id="h", requested=4, published=4, publish_errors=0,
                         first_publish=0.0, last_outcome=1.0, latencies=[0.1] * 4,
                         statuses={"resolved": 3, "escalated": 1},
                         handlers={"template": 2, "llm_small": 1, "human": 1})
    assert "answered by template 2 (50%), human 1 (25%), llm_small 1 (25%)" in format_result(result)
