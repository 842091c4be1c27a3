"""The paced run's hop breakdown: each ticket's path from its publish through the first audit
row of every stage it went through to its outcome, in the order they came."""

from __future__ import annotations

from pinworks_cli.bench_hops import format_hops, hop_times


def test_each_ticket_is_cut_into_hops_in_the_order_its_stages_came() -> None:
    stage_times = {
        "t1": {"router": 10.030, "classifier": 10.010, "verifier": 10.060, "specialist": 10.040},
        "t2": {"classifier": 20.020, "router": 20.050, "escalation": 20.070},
        "t3": {"classifier": 30.010},
    }
    sent = {"t1": 10.0, "t2": 20.0}
    received = {"t1": 10.100, "t2": 20.090, "t3": 31.0}
    hops = hop_times(stage_times, sent, received)
    assert {name: [round(s, 3) for s in seconds] for name, seconds in hops.items()} == {
        "submitted→classifier": [0.010, 0.020],
        "classifier→router": [0.020, 0.030],
        "router→specialist": [0.010],
        "specialist→verifier": [0.020],
        "verifier→outcome": [0.040],
        "router→escalation": [0.020],
        "escalation→outcome": [0.020],
    }
    lines = format_hops(hops, 2)
    assert [line.split()[0] for line in lines[1:]] == [
        "submitted→classifier", "classifier→router", "router→specialist", "router→escalation",
        "specialist→verifier", "verifier→outcome", "escalation→outcome"]


def test_rows_written_after_the_outcome_are_not_on_its_way() -> None:
    hops = hop_times({"t": {"classifier": 1.01, "verifier": 1.05, "quality-sample": 1.2}},
                     {"t": 1.0}, {"t": 1.1})
    assert list(hops) == ["submitted→classifier", "classifier→verifier", "verifier→outcome"]


def test_the_report_gives_each_hop_its_tickets_p50_and_p99() -> None:
    hops = hop_times({"t1": {"classifier": 0.010, "router": 0.030},
                      "t2": {"classifier": 1.020, "router": 1.030}},
                     {"t1": 0.0, "t2": 1.0}, {"t1": 0.050, "t2": 1.060})
    lines = format_hops(hops, 2)
    assert "p50 / p99 ms" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == [
        "submitted→classifier", "classifier→router", "router→outcome"]
    assert lines[1].split()[1:] == ["2", "15.0", "/", "19.9"]
    assert format_hops({}, 0) == ["  hops        no audit rows of the paced run's tickets"]
