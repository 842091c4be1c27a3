"""Every service's /metrics, scraped while the platform runs, agrees with the audit trail in
Postgres: the counters are what the decisions, cost ledger and outcomes tables say happened.

The run uses a business unit of its own, so unit-labelled series are compared with that unit's
rows directly; unlabelled ones (per rule, per check, per stage) are compared as the change over
the run with the rows the run added."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from pinworks_cli.top import Samples, parse_samples, series
from pinworks_contracts.messages import (
    Classification,
    RouteDecision,
    TicketEnvelope,
    TicketSubmission,
)
from pinworks_contracts.subjects import WORK_STREAM, routed_subject
from pinworks_devtools.chat_server import ChatServer, Reply

from .conftest import SERVICES, Platform, PlatformClient, record_accepted, run_id, ticket
from .test_pipeline import CLEAR
from .test_specialists import CANADA, quoting_first_passage

pytestmark = pytest.mark.e2e

def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return parse_samples(response.read().decode())


def scrape_all(platform: Platform) -> dict[str, Samples]:
    return {name: scrape(platform.processes[name].health_port) for name in SERVICES}


def total(scrapes: dict[str, Samples], name: str, **labels: str) -> float:
    """The sum over every service of `name`'s samples that carry `labels`."""
    wanted = set(labels.items())
    return sum(value for samples in scrapes.values() for (sample, have), value in samples.items()
               if sample == name and wanted <= have)


def by_label(scrapes: dict[str, Samples], name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """`name` summed by the values of `keys` (as `pinworks top` reads it); every sample of it
    must carry every key."""
    unlabelled = [dict(have) for samples in scrapes.values() for sample, have in samples
                  if sample == name and not set(keys) <= dict(have).keys()]
    assert not unlabelled, f"{name} samples without {keys}: {unlabelled[:3]}"
    return series(scrapes, name, *keys)


def delta(after: dict[tuple[str, ...], float], before: dict[tuple[str, ...], float]
          ) -> dict[tuple[str, ...], float]:
    changed = {key: value - before.get(key, 0.0) for key, value in after.items()}
    return {key: value for key, value in changed.items() if value}


async def eventually(check: Callable[[], Awaitable[None]], within: float = 30.0) -> None:
    """Re-run `check` until it passes: a counter moves just after its transaction commits."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            await check()
            return
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.25)


async def route_to_llm(client: PlatformClient, ticket_id: str, unit: str) -> None:
    envelope = TicketEnvelope(
        ticket=TicketSubmission(ticket_id=ticket_id, business_unit=unit,
                                body=f"{CANADA} Ref {ticket_id}"),
        trace_id="cd" * 16, received_at=datetime.now(UTC),
        classification=Classification(intent="country_support", confidence=0.42,
                                      alternatives=[], out_of_scope=False, model_version="e2e"),
        route=RouteDecision(handler="llm_small", rule="e2e", reason="chosen by the test",
                            policy_version="e2e", fallbacks=["kb", "human"]),
    )
    await record_accepted(client, envelope)
    await client.js.publish(routed_subject("llm_small"), envelope.model_dump_json().encode(),
                            stream=WORK_STREAM, headers={"Nats-Msg-Id": f"{ticket_id}:routed"})


@dataclass
class MetricsRun:
    """One run's tickets and what the metrics and the audit said before it began."""

    client: PlatformClient
    fake_llm: ChatServer
    unit: str
    tickets: dict[str, str]
    llm_ok: str
    llm_down: str
    before: dict[str, Samples]
    before_decision: int
    before_outcome: int

    def delta(self, after: dict[str, Samples], name: str, *keys: str
              ) -> dict[tuple[str, ...], float]:
        return delta(by_label(after, name, *keys), by_label(self.before, name, *keys))


async def _stages_agree(run: MetricsRun, after: dict[str, Samples]) -> None:
    """Stage runner: each message handled once, per consumer; decisions per stage."""
    handled = run.delta(after, "pinworks_stage_messages_total", "consumer", "result")
    assert handled.get(("classifier", "handled")) == len(run.tickets) + 1, handled
    assert handled.get(("specialist-llm_small", "handled")) == 2, handled
    assert not {key for key in handled if key[1] == "dead_lettered"}, handled
    rows = await run.client.fetch(
        "SELECT stage, count(*) AS n FROM decisions WHERE id > :i GROUP BY stage",
        i=run.before_decision)
    assert run.delta(after, "pinworks_decisions_total", "stage") == {
        (row.stage,): row.n for row in rows}


async def _costs_agree(run: MetricsRun, after: dict[str, Samples]) -> None:
    """Cost per unit and component: the ledger."""
    ledger = await run.client.fetch(
        "SELECT component, sum(amount_usd) AS usd FROM cost_ledger WHERE business_unit = :u "
        "GROUP BY component", u=run.unit)
    costs = by_label(after, "pinworks_cost_usd_total", "business_unit", "component")
    mine = {component: value for (u, component), value in costs.items() if u == run.unit}
    assert mine.keys() == {row.component for row in ledger}
    for row in ledger:
        assert mine[row.component] == pytest.approx(float(row.usd), abs=1e-9)


async def _outcomes_agree(run: MetricsRun, after: dict[str, Samples]) -> None:
    """Outcomes per status, and end-to-end latency for every accepted ticket's outcome."""
    stored = await run.client.fetch(
        "SELECT o.status, count(*) AS n, count(t.ticket_id) AS accepted FROM outcomes o "
        "LEFT JOIN tickets t ON t.ticket_id = o.ticket_id WHERE o.id > :i "
        "GROUP BY o.status", i=run.before_outcome)
    outcomes = {status: value for (status, u), value in
                by_label(after, "pinworks_outcomes_total", "status", "business_unit").items()
                if u == run.unit}
    mine_stored = await run.client.fetch(
        "SELECT status, count(*) AS n FROM outcomes WHERE payload->>'business_unit' = :u "
        "GROUP BY status", u=run.unit)
    assert outcomes == {row.status: row.n for row in mine_stored}
    assert run.delta(after, "pinworks_end_to_end_seconds_count", "status") == {
        (row.status,): row.accepted for row in stored if row.accepted}


async def _classifier_agrees(run: MetricsRun, after: dict[str, Samples]) -> None:
    """Confidence and out-of-scope per unit, as recorded on the tickets."""
    [row] = await run.client.fetch(
        "SELECT count(*) AS n, sum(confidence) AS conf, "
        "count(*) FILTER (WHERE (classification->>'out_of_scope')::boolean) AS oos "
        "FROM tickets WHERE business_unit = :u AND submission_seq > 0", u=run.unit)
    assert total(after, "pinworks_classifier_confidence_count", business_unit=run.unit) == row.n
    assert total(after, "pinworks_classifier_confidence_sum", business_unit=run.unit) == \
        pytest.approx(row.conf, abs=1e-4)
    assert total(after, "pinworks_classifier_classified_total", business_unit=run.unit,
                 out_of_scope="true") == row.oos >= 1


async def _router_and_verifier_agree(run: MetricsRun, after: dict[str, Samples]) -> None:
    """Router decisions per rule and handler; verifier failures per check."""
    routed = await run.client.fetch(
        "SELECT output->>'rule' AS rule, output->>'handler' AS handler, count(*) AS n "
        "FROM decisions WHERE id > :i AND stage = 'router' GROUP BY 1, 2", i=run.before_decision)
    assert run.delta(after, "pinworks_routing_decisions_total", "rule", "handler") == {
        (r.rule, r.handler): r.n for r in routed}
    failed = await run.client.fetch(
        "SELECT c->>'check' AS check, count(*) AS n FROM decisions, "
        "jsonb_array_elements(output->'checks') c WHERE id > :i AND stage = 'verifier' "
        "AND NOT (c->>'passed')::boolean GROUP BY 1", i=run.before_decision)
    assert run.delta(after, "pinworks_verifier_check_failures_total", "check") == {
        (r.check,): r.n for r in failed}


async def _model_endpoint_agrees(run: MetricsRun, after: dict[str, Samples]) -> None:
    """Tokens as billed in the audit, calls as the server saw them."""
    usage = await run.client.fetch(
        "SELECT sum((output->'usage'->>'input_tokens')::int) AS input, "
        "sum((output->'usage'->>'output_tokens')::int) AS output FROM decisions "
        "WHERE id > :i AND component = 'specialist:llm_small'", i=run.before_decision)
    assert run.delta(after, "pinworks_model_tokens_total", "endpoint", "direction") == {
        ("llm_small", "input"): usage[0].input, ("llm_small", "output"): usage[0].output}
    calls = run.delta(after, "pinworks_model_calls_total", "endpoint", "result")
    server_calls = len(run.fake_llm.requests_containing(run.llm_ok)) + \
        len(run.fake_llm.requests_containing(run.llm_down))
    assert sum(calls.values()) == server_calls
    assert calls[("llm_small", "ok")] == 1 and calls[("llm_small", "http_error")] >= 1


async def _queue_and_gauges_agree(run: MetricsRun, after: dict[str, Samples]) -> None:
    """What waits for a person, per unit; the gauges every deployment alerts on are there."""
    waiting = await run.client.fetch(
        "SELECT count(*) AS n FROM escalations WHERE business_unit = :u "
        "AND status IN ('open', 'claimed')", u=run.unit)
    assert total(after, "pinworks_escalation_queue_depth", business_unit=run.unit) == \
        waiting[0].n >= 2
    assert total(after, "pinworks_escalation_oldest_ticket_age_seconds",
                 business_unit=run.unit) > 0
    exported = {key for samples in after.values() for key in samples}
    for consumer in ("classifier", "router", "verifier", "escalation", "specialist-llm_small",
                     "specialist-assist"):
        stream = "PINWORKS_TICKETS" if consumer == "classifier" else "PINWORKS_WORK"
        assert ("pinworks_consumer_pending_messages",
                frozenset({("stream", stream), ("consumer", consumer)})) in exported, consumer
    assert total(after, "pinworks_classifier_drift_samples", distribution="intent") >= 1
    assert ("pinworks_model_circuit_state", frozenset({("endpoint", "llm_small")})) in \
        after["specialists"]


AGREEMENTS = (_stages_agree, _costs_agree, _outcomes_agree, _classifier_agrees,
              _router_and_verifier_agree, _model_endpoint_agrees, _queue_and_gauges_agree)


async def _submit_the_run(platform: Platform, client: PlatformClient, fake_llm: ChatServer,
                          rid: str) -> MetricsRun:
    """On a quiet platform (so the run's changes are the run's): clear tickets, an angry one, an
    out-of-scope one, a rejected one and two routed to the model (one answered, one failing)."""
    await eventually(lambda: _no_backlog(platform), within=60)
    before = scrape_all(platform)
    [before_id] = await client.fetch("SELECT coalesce(max(id), 0) AS id FROM decisions")
    [before_outcome] = await client.fetch("SELECT coalesce(max(id), 0) AS id FROM outcomes")
    run = MetricsRun(client, fake_llm, f"metrics-{rid}",
                     {f"{rid}-{intent}": body for intent, body in CLEAR.items()},
                     f"{rid}-llmok", f"{rid}-llm500", before, before_id.id, before_outcome.id)
    run.tickets[f"{rid}-angry"] = ("My card has not arrived after two weeks. If it is not here "
                                   "by Friday I will contact my lawyer.")
    run.tickets[f"{rid}-oos"] = "What is a good recipe for a vegetarian lasagne with spinach?"
    for ticket_id, body in run.tickets.items():
        await client.submit(ticket(ticket_id, body, run.unit))
    rejected = f"{rid}-rejected"
    await client.submit({"ticket_id": rejected, "business_unit": run.unit, "body": ""})
    fake_llm.when(run.llm_ok, Reply(body=quoting_first_passage))
    fake_llm.when(run.llm_down, Reply(500, {"error": {"message": "overloaded"}}))
    # Other tests on this platform fail llm_small on purpose; five failures in a row open its
    # circuit for 30 s, and the answered call must reach the server: it goes once the circuit
    # is no longer open (half-open, it is the probe), and the failing one after its outcome.
    await eventually(lambda: _circuit_not_open(platform, "llm_small"), within=60)
    await route_to_llm(client, run.llm_ok, run.unit)
    await client.outcomes.wait_for([run.llm_ok])
    await route_to_llm(client, run.llm_down, run.unit)
    seen = await client.outcomes.wait_for([*run.tickets, rejected, run.llm_ok, run.llm_down])
    assert seen[rejected][0]["status"] == "rejected"
    return run


async def test_every_service_exports_metrics_that_agree_with_the_audit(
    platform: Platform, client: PlatformClient, fake_llm: ChatServer,
) -> None:
    rid = run_id()
    run = await _submit_the_run(platform, client, fake_llm, rid)

    async def agrees() -> None:
        after = scrape_all(platform)
        for agreement in AGREEMENTS:
            await agreement(run, after)

    await eventually(agrees)
    for samples in scrape_all(platform).values():
        assert not any(f"{rid}-" in value for _, labels in samples for _, value in labels), \
            "a ticket id in a label"


async def _circuit_not_open(platform: Platform, endpoint: str) -> None:
    state = scrape(platform.processes["specialists"].health_port).get(
        ("pinworks_model_circuit_state", frozenset({("endpoint", endpoint)})))
    assert state in (0.0, 1.0), f"{endpoint}'s circuit is open ({state})"


async def _no_backlog(platform: Platform) -> None:
    scrapes = scrape_all(platform)
    assert total(scrapes, "pinworks_consumer_pending_messages") == 0
    assert total(scrapes, "pinworks_consumer_ack_pending_messages") == 0


LABEL_NAMES = {
    "stage", "consumer", "result", "business_unit", "component", "status", "stream", "rule",
    "handler", "check", "verdict", "endpoint", "direction", "kind", "distribution",
    "out_of_scope", "agrees", "poller", "by",
    # prometheus-client's own: histogram buckets, the process and Python collectors
    "le", "generation", "version", "implementation", "major", "minor", "patchlevel",
}


def test_labels_are_bounded(platform: Platform) -> None:
    """Every label is one of a fixed set of dimensions, none of them a ticket id."""
    for name, samples in scrape_all(platform).items():
        for sample, labels in samples:
            assert {key for key, _ in labels} <= LABEL_NAMES, (name, sample, labels)


def test_top_shows_the_running_platform(platform: Platform) -> None:
    from typer.testing import CliRunner

    from pinworks_cli.main import app

    urls = [f"{name}={platform.processes[name].metrics_url}" for name in SERVICES]
    result = CliRunner().invoke(app, ["top", "--once", *(f"--url={u}" for u in urls)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "not answering" not in result.output
    for figure in ("specialist-llm_small", "classifier", "escalation queue", "drift vs training",
                   "model endpoints", "llm_small"):
        assert figure in result.output, figure
