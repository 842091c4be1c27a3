"""The bench's cost figures: CPU per ticket per process, the in-process baseline and the
overhead ratio, computed from given readings (never timed here), plus the /proc reading on real
processes and the baseline's steps as the services install them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pinworks_cli.bench import make_ticket
from pinworks_cli.bench_baseline import (
    InProcess,
    decision_of,
    envelopes,
    follow_route,
    kind_batches,
    run_baseline,
    run_steps,
)
from pinworks_cli.bench_cpu import listening_pid, running_platform_pids, tree_cpu_seconds
from pinworks_cli.bench_figures import (
    PLATFORM_PROCESSES,
    Baseline,
    BenchResult,
    CpuReading,
    Rounds,
    agreement,
    combine,
    cpu_per_ticket,
    merge_baselines,
    missing_processes,
    overhead_ratio,
    paced_offsets,
    platform_total,
    spread,
)
from pinworks_cli.bench_report import BenchRun, format_run
from pinworks_cli.bench_session import round_ranges
from pinworks_cli.bench_texts import MULTI, SENTENCES, SHORT, kind_of, text_of


def test_cpu_per_ticket_is_the_delta_over_answered_tickets() -> None:
    before = CpuReading(pids={"router": 10, "postgres": 20, "verifier": 30, "gone": 40},
                        seconds={"router": 1.0, "postgres": 5.0, "verifier": 2.0, "gone": 1.0})
    after = CpuReading(pids={"router": 10, "postgres": 20, "verifier": 31, "gone": 40},
                       seconds={"router": 3.0, "postgres": 6.5, "verifier": 9.0})
    figures = cpu_per_ticket(before, after, tickets=500)
    assert figures["router"] == pytest.approx(4.0)      # 2 s over 500 tickets
    assert figures["postgres"] == pytest.approx(3.0)
    assert figures["verifier"] is None                  # restarted: another pid
    assert figures["gone"] is None                      # not readable afterwards
    assert set(cpu_per_ticket(before, after, tickets=0).values()) == {None}


def test_platform_total_leaves_out_the_model_server_and_refuses_a_partial_sum() -> None:
    everything = {name: 1.0 for name in PLATFORM_PROCESSES}
    assert platform_total({**everything, "model": 40.0}) == pytest.approx(7.0)
    assert platform_total({**everything, "postgres": None}) is None
    without_services = {"nats-server": 1.0, "postgres": 2.0}  # services on another machine
    assert platform_total(without_services) is None
    assert missing_processes(without_services) == [
        "classifier", "router", "specialists", "verifier", "escalation"]
    assert platform_total({}) is None


def test_overhead_ratio_is_platform_cpu_over_in_process_cpu() -> None:
    assert overhead_ratio(15.0, 6.0) == pytest.approx(2.5)
    assert overhead_ratio(None, 6.0) is None
    assert overhead_ratio(15.0, None) is None
    assert overhead_ratio(15.0, 0.0) is None


def test_baseline_attributes_cpu_to_steps_and_kinds_by_its_clock() -> None:
    clock = iter(float(t) for t in range(100))
    calls: list[tuple[str, int]] = []

    def step(name: str):
        def run(batch):
            calls.append((name, len(batch)))
            return [f"{name}:{item}" for item in batch]
        return run

    baseline = run_steps([("classify", step("classify")), ("verify", step("verify"))],
                         [["a", "b"], ["c"]], [SHORT, MULTI], clock=lambda: next(clock))
    # Each step call advances the clock by exactly 1, so each step costs 1 s per batch.
    assert calls == [("classify", 2), ("verify", 2), ("classify", 1), ("verify", 1)]
    assert baseline.step_seconds == {"classify": 2.0, "verify": 2.0}
    assert baseline.kind_tickets == {SHORT: 2, MULTI: 1}
    # A batch's and the whole run's CPU are their step calls' readings, nothing around them.
    assert baseline.kind_seconds == {SHORT: 2.0, MULTI: 2.0}
    assert baseline.tickets == 3
    assert baseline.cpu_seconds == pytest.approx(4.0)
    assert baseline.ms_per_ticket == pytest.approx(4000 / 3)
    assert baseline.kind_ms(SENTENCES) is None


def test_kind_batches_keep_one_kind_per_batch() -> None:
    numbers = range(10)
    batches, kinds = kind_batches(numbers, [f"t{n}" for n in numbers], batch_size=3)
    assert kinds == [SHORT, SHORT, SENTENCES, MULTI]
    assert batches == [["t0", "t3", "t6"], ["t9"], ["t1", "t4", "t7"], ["t2", "t5", "t8"]]


def test_paced_offsets_space_tickets_by_the_rate() -> None:
    assert paced_offsets(4, 20.0) == pytest.approx([0.0, 0.05, 0.1, 0.15])
    assert paced_offsets(0, 20.0) == []
    with pytest.raises(ValueError):
        paced_offsets(3, 0)


def test_bench_texts_mix_short_queries_and_multi_sentence_tickets() -> None:
    kinds = [kind_of(n) for n in range(30)]
    assert {kinds.count(kind) for kind in (SHORT, SENTENCES, MULTI)} == {10}
    for n in range(60):
        _, body = text_of(n)
        sentences = sum(body.count(mark) for mark in ".?!")
        if kind_of(n) == SHORT:
            assert len(body.split()) <= 6, body
        if kind_of(n) == MULTI:
            assert sentences >= 3, body
    assert make_ticket("r", 0, ["u"])["subject"] is None  # a short query has no subject


def test_report_gives_paced_latency_cpu_baseline_and_ratio() -> None:
    full = BenchResult(run_id="r1", requested=2, published=2, publish_errors=0,
                       first_publish=0.0, last_outcome=1.0, latencies=[0.1, 0.2],
                       cpu={"classifier": 4.0, "router": 0.0, "specialists": 0.0,
                            "verifier": 0.0, "escalation": 0.0, "nats-server": 0.0,
                            "postgres": 2.0, "model": 9.0},
                       idle_cpu={"classifier": 1.5, "postgres": None})
    paced = BenchResult(run_id="r1", requested=2, published=2, publish_errors=0,
                        first_publish=0.0, last_outcome=1.0, latencies=[0.03, 0.05])
    baseline = Baseline(tickets=100, cpu_seconds=0.3, wall_seconds=0.3,
                        step_seconds={"classify": 0.2, "verify": 0.1},
                        kind_seconds={SHORT: 0.1, MULTI: 0.2}, kind_tickets={SHORT: 50, MULTI: 50})
    report = format_run(BenchRun(full=full, paced=paced, paced_rate=20, baseline=baseline,
                                 load_before=(1.5, 1.0, 0.5), load_after=(2.0, 1.0, 0.5)))
    assert "paced       20 tickets/s, 2/2 outcomes: p50 40.0 ms" in report
    assert "classifier 4.00, router 0.00," in report and "postgres 2.00, model 9.00" in report
    assert "6.00 CPU-ms per ticket (model server not counted)" in report
    assert "3.00 CPU-ms per ticket (333 tickets per CPU-second)" in report
    assert "classify 2.00, verify 1.00" in report
    assert f"{SHORT} 2.00, {SENTENCES} -, {MULTI} 4.00" in report
    assert "overhead    2.00x" in report
    assert "idle CPU    (ms per second, before the run) classifier 1.50, postgres -" in report
    assert "load average 1.50 1.00 0.50 before, 2.00 1.00 0.50 after" in report
    partial = format_run(BenchRun(full=BenchResult(
        run_id="r2", requested=1, published=1, publish_errors=0, first_publish=0.0,
        last_outcome=1.0, latencies=[0.1], cpu={"postgres": 2.0}), baseline=baseline))
    assert "no total: no figure for classifier, router" in partial
    assert "overhead    -" in partial


def test_tree_cpu_counts_a_child_that_already_exited(tmp_path: Path) -> None:
    """A child that burned CPU and was reaped still counts (Postgres' backends come and go)."""
    done = tmp_path / "done"
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    shell = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "{burn}"; touch {done}; '
                              "exec sleep 60"])
    try:
        deadline = time.monotonic() + 30
        while not done.exists():  # the child's own signal that it has exited
            assert time.monotonic() < deadline, "the child never finished"
            time.sleep(0.05)
        seconds = tree_cpu_seconds(shell.pid)
        assert seconds is not None and seconds >= 0.25
    finally:
        shell.kill()
        shell.wait()
    assert tree_cpu_seconds(shell.pid) is None


def test_the_running_platform_is_found_by_pid_file_and_listening_port(tmp_path: Path) -> None:
    (tmp_path / "services.pids").write_text(json.dumps({"router": 123, "model": 456}))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert listening_pid(f"nats://127.0.0.1:{port}") == os.getpid()
        pids = running_platform_pids(f"nats://127.0.0.1:{port}", None, tmp_path)
    assert pids == {"router": 123, "model": 456, "nats-server": os.getpid()}
    assert running_platform_pids(f"nats://127.0.0.1:{port}", None, None) == {}


def test_in_process_baseline_runs_every_installed_step_on_the_bench_tickets() -> None:
    tickets = [make_ticket("r", n, ["retail"]) for n in range(9)]
    baseline = run_baseline(tickets, batch_size=4)
    assert list(baseline.step_seconds) == ["classify", "route", "template", "verify", "escalate",
                                          "assist"]
    assert baseline.tickets == 9
    assert baseline.kind_tickets == {SHORT: 3, SENTENCES: 3, MULTI: 3}
    assert baseline.cpu_seconds > 0


def test_spread_is_the_median_and_range_of_the_figures_there_are() -> None:
    figures = spread([6.0, None, 7.0, 5.0, 6.5])
    assert figures is not None
    assert (figures.median, figures.low, figures.high, figures.count) == (6.25, 5.0, 7.0, 4)
    assert figures.relative == pytest.approx(1.0 / 6.25)
    assert spread([None]) is None and spread([]) is None


def test_each_rounds_ratio_is_set_against_the_baseline_runs_either_side() -> None:
    rounds = Rounds(platform_ms=[12.0, None, 9.0], baseline_ms=[5.0, 7.0, 6.0, None])
    # Round 0 between 5 and 7 (mean 6), round 1 has no platform figure, round 2 has only the
    # run before it (the one after had no figure).
    assert rounds.ratios() == [pytest.approx(2.0), None, pytest.approx(1.5)]
    assert Rounds([10.0], [None, None]).ratios() == [None]


def test_rounds_split_the_count_into_nearly_equal_runs() -> None:
    assert round_ranges(0, 10, 3) == [range(0, 4), range(4, 7), range(7, 10)]
    assert round_ranges(5, 2, 3) == [range(5, 6), range(6, 7)]  # never an empty round
    assert round_ranges(0, 6, 1) == [range(0, 6)]


def test_combined_rounds_count_every_ticket_and_weigh_cpu_by_tickets() -> None:
    def result(latencies: list[float], seconds: tuple[float, float], cpu: dict[str, float | None],
               **extra: object) -> BenchResult:
        return BenchResult(run_id="r", requested=len(latencies), published=len(latencies),
                           publish_errors=0, first_publish=seconds[0], last_outcome=seconds[1],
                           latencies=latencies, statuses={"resolved": len(latencies)},
                           handlers={"template": len(latencies)}, cpu=cpu, **extra)  # type: ignore[arg-type]

    first = result([0.1] * 3, (10.0, 13.0), {"router": 2.0, "postgres": 1.0},
                   idle_cpu={"router": 0.5}, answered_by={"a": "template", "b": "human"})
    second = result([0.3], (20.0, 21.0), {"router": 6.0, "postgres": None})
    both = combine([first, second])
    assert both.received == 4 and both.requested == 4
    assert both.duration == pytest.approx(4.0)           # 3 s + 1 s, not the pause between
    assert both.throughput == pytest.approx(1.0)
    assert both.statuses == {"resolved": 4} and both.handlers == {"template": 4}
    assert both.cpu == {"router": pytest.approx((2.0 * 3 + 6.0) / 4), "postgres": None}
    assert both.idle_cpu == {"router": 0.5}
    assert both.answered_by == {"a": "template", "b": "human"}
    with pytest.raises(ValueError):
        combine([])


def test_in_process_runs_are_warmed_once_and_measured_on_the_same_tickets() -> None:
    seen: list[list[str]] = []

    def step(batch):
        seen.append([envelope.ticket.ticket_id for envelope in batch])
        return list(batch)

    tickets = [make_ticket("r", n, ["retail"]) for n in range(4)]
    in_process = InProcess(tickets, batch_size=10, steps=[("only", step)])
    in_process.warm(range(100, 103), [make_ticket("r", n, ["retail"]) for n in range(100, 103)])
    warmed = sorted(ticket for batch in seen for ticket in batch)
    assert warmed == ["bench-r-100", "bench-r-101", "bench-r-102"]
    seen.clear()
    runs = [in_process.measure(), in_process.measure()]
    assert sorted(ticket for batch in seen for ticket in batch) == sorted(
        [f"bench-r-{n}" for n in range(4)] * 2)
    merged = merge_baselines(runs)
    assert merged.tickets == 8 and merged.kind_tickets == {SHORT: 4, SENTENCES: 2, MULTI: 2}
    assert merged.cpu_seconds == pytest.approx(sum(run.cpu_seconds for run in runs))


def test_report_over_rounds_gives_medians_and_ranges() -> None:
    full = BenchResult(run_id="r1", requested=2, published=2, publish_errors=0,
                       first_publish=0.0, last_outcome=1.0, latencies=[0.1, 0.2],
                       cpu={name: 1.0 for name in PLATFORM_PROCESSES})
    baseline = Baseline(tickets=300, cpu_seconds=1.5, wall_seconds=1.5,
                        step_seconds={"classify": 1.2, "verify": 0.3},
                        kind_seconds={SHORT: 0.5}, kind_tickets={SHORT: 300})
    rounds = Rounds(platform_ms=[7.5, 6.9, 7.2], baseline_ms=[5.0, 5.0, 6.0, 4.0])
    report = format_run(BenchRun(full=full, baseline=baseline, rounds=rounds, warmup=300,
                                 baseline_runs=3))
    assert "platform 7.50 / 6.90 / 7.20 CPU-ms per ticket (median 7.20; 6.90-7.50" in report
    assert "in-process  100 tickets x 3 runs: 5.00 CPU-ms per ticket (median; 4.00-6.00, +-20%)" \
        in report
    assert "classify 4.00, verify 1.00" in report
    assert "both warmed on 300 tickets" in report
    # 7.5 / 5.0, 6.9 / 5.5, 7.2 / 5.0
    assert "overhead    1.44x (median of 3 rounds, 1.25-1.50x)" in report


def test_a_specialists_step_drafts_only_the_tickets_routed_to_it() -> None:
    from pinworks_contracts.messages import RouteDecision

    def routed(envelope, handler: str):
        return envelope.model_copy(update={"route": RouteDecision(
            handler=handler, rule="r", reason="r", policy_version="p")})

    calls: list[list[str]] = []

    def template(batch):
        calls.append([envelope.ticket.ticket_id for envelope in batch])
        return [envelope.model_copy() for envelope in batch]

    items = envelopes([make_ticket("r", n, ["retail"]) for n in range(4)])
    batch = [routed(items[0], "human"), routed(items[1], "template"), items[2],
             routed(items[3], "template")]
    out = follow_route("template", template)(batch)
    assert calls == [["bench-r-1", "bench-r-3"]]
    assert [envelope.ticket.ticket_id for envelope in out] == [
        f"bench-r-{n}" for n in range(4)]
    assert out[0] is batch[0] and out[2] is batch[2]          # passed on untouched
    assert out[1] is not batch[1] and out[3] is not batch[3]  # the step's own results
    calls.clear()
    assert follow_route("template", template)([batch[0], batch[2]]) == [batch[0], batch[2]]
    assert calls == []                                        # no call for none of its own


def test_the_baseline_drafts_exactly_the_tickets_the_route_sends_to_the_template() -> None:
    """The installed steps over the bench's texts: a ticket routed to a person (or to a model)
    gets no draft; every ticket routed to the template and with a template for its intent
    does; and both kinds occur."""
    tickets = [make_ticket("r", n, ["retail"]) for n in range(60)]
    in_process = InProcess(tickets, batch_size=16)
    steps = dict(in_process.steps)
    items = steps["route"](steps["classify"](envelopes(tickets)))
    drafted = steps["template"](items)
    handlers = {envelope.route.handler for envelope in drafted}
    assert "human" in handlers and "template" in handlers, handlers
    for envelope in drafted:
        if envelope.route.handler != "template":
            assert envelope.draft is None, envelope.ticket.ticket_id
    to_template = [e for e in drafted if e.route.handler == "template"]
    assert any(e.draft is not None for e in to_template)
    assert all(e.draft is None or e.draft.handler == "template" for e in to_template)
    # What the bench sets against the platform's outcomes: the same, ticket by ticket.
    decided = in_process.measure().decisions
    assert decided == dict(decision_of(envelope) for envelope in drafted)
    assert decided["bench-r-0"] == "human" or decided["bench-r-0"].startswith("template")
    assert set(decided.values()) <= {"human", "template", "template undrafted"}


def test_decisions_are_set_against_the_platforms_ticket_by_ticket() -> None:
    figures = agreement({"t1": "template", "t2": "human", "t3": "human", "t4": "template"},
                        {"t1": "template", "t2": "human", "t3": "kb", "t5": "human"})
    assert (figures.compared, figures.same) == (3, 2)
    assert figures.differing == {("human", "kb"): 1}
    full = BenchResult(run_id="r1", requested=2, published=2, publish_errors=0,
                       first_publish=0.0, last_outcome=1.0, latencies=[0.1, 0.2],
                       answered_by={"t1": "template", "t3": "kb"})
    baseline = Baseline(tickets=2, cpu_seconds=0.1, wall_seconds=0.1,
                        decisions={"t1": "template", "t3": "human"})
    report = format_run(BenchRun(full=full, baseline=baseline))
    assert ("decisions   in-process as the platform on 1 of 2 tickets both decided (who "
            "answers: a handler's draft or a person); differing in-process human / platform kb: 1"
            ) in report
    assert "decisions   in-process as the platform on 2 of 2" in format_run(BenchRun(
        full=full, baseline=Baseline(tickets=2, cpu_seconds=0.1, wall_seconds=0.1,
                                     decisions={"t1": "template", "t3": "kb"})))
    assert "decisions" not in format_run(BenchRun(full=full, baseline=Baseline(
        tickets=2, cpu_seconds=0.1, wall_seconds=0.1)))
