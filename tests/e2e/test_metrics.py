"""Every service's /metrics, scraped while the platform runs, agrees with the audit trail in
Postgres: the counters are what the decisions, cost ledger and outcomes tables say happened.

The run uses a business unit of its own, so unit-labelled series are compared with that unit's
rows directly; unlabelled ones (per rule, per check, per stage) are compared as the change over
the run with the rows the run added."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Awaitable, Callable
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

from .conftest import SERVICES, Platform, PlatformClient, run_id, ticket
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
    await client.js.publish(routed_subject("llm_small"), envelope.model_dump_json().encode(),
                            stream=WORK_STREAM, headers={"Nats-Msg-Id": f"{ticket_id}:routed"})


async def test_every_service_exports_metrics_that_agree_with_the_audit(
    platform: Platform, client: PlatformClient, fake_llm: ChatServer,
) -> None:
    rid = run_id()
    unit = f"metrics-{rid}"
    # a quiet platform first, so the run's changes are the run's
    await eventually(lambda: _no_backlog(platform), within=60)
    before = scrape_all(platform)
    [before_id] = await client.fetch("SELECT coalesce(max(id), 0) AS id FROM decisions")
    [before_outcome] = await client.fetch("SELECT coalesce(max(id), 0) AS id FROM outcomes")

    tickets = {f"{rid}-{intent}": body for intent, body in CLEAR.items()}
    tickets[f"{rid}-angry"] = ("My card has not arrived after two weeks. If it is not here by "
                               "Friday I will contact my lawyer.")
    tickets[f"{rid}-oos"] = "What is a good recipe for a vegetarian lasagne with spinach?"
    for ticket_id, body in tickets.items():
        await client.submit(ticket(ticket_id, body, unit))
    rejected = f"{rid}-rejected"
    await client.submit({"ticket_id": rejected, "business_unit": unit, "body": ""})
    llm_ok, llm_down = f"{rid}-llmok", f"{rid}-llm500"
    fake_llm.when(llm_ok, Reply(body=quoting_first_passage))
    fake_llm.when(llm_down, Reply(500, {"error": {"message": "overloaded"}}))
    await route_to_llm(client, llm_ok, unit)
    await route_to_llm(client, llm_down, unit)
    everything = [*tickets, rejected, llm_ok, llm_down]
    seen = await client.outcomes.wait_for(everything)
    assert seen[rejected][0]["status"] == "rejected"

    async def agrees() -> None:
        after = scrape_all(platform)
        # stage runner: each message handled once, per consumer
        handled = delta(by_label(after, "pinworks_stage_messages_total", "consumer", "result"),
                        by_label(before, "pinworks_stage_messages_total", "consumer", "result"))
        assert handled.get(("classifier", "handled")) == len(tickets) + 1, handled
        assert handled.get(("specialist-llm_small", "handled")) == 2, handled
        assert not {key for key in handled if key[1] == "dead_lettered"}, handled

        rows = await client.fetch(
            "SELECT stage, count(*) AS n FROM decisions WHERE id > :i GROUP BY stage",
            i=before_id.id)
        decisions = delta(by_label(after, "pinworks_decisions_total", "stage"),
                          by_label(before, "pinworks_decisions_total", "stage"))
        assert decisions == {(row.stage,): row.n for row in rows}

        # cost per unit and component: the ledger
        ledger = await client.fetch(
            "SELECT component, sum(amount_usd) AS usd FROM cost_ledger WHERE business_unit = :u "
            "GROUP BY component", u=unit)
        costs = by_label(after, "pinworks_cost_usd_total", "business_unit", "component")
        mine = {component: value for (u, component), value in costs.items() if u == unit}
        assert mine.keys() == {row.component for row in ledger}
        for row in ledger:
            assert mine[row.component] == pytest.approx(float(row.usd), abs=1e-9)

        # outcomes per status, and end-to-end latency for every accepted ticket's outcome
        stored = await client.fetch(
            "SELECT o.status, count(*) AS n, count(t.ticket_id) AS accepted FROM outcomes o "
            "LEFT JOIN tickets t ON t.ticket_id = o.ticket_id WHERE o.id > :i "
            "GROUP BY o.status", i=before_outcome.id)
        outcomes = {status: value for (status, u), value in
                    by_label(after, "pinworks_outcomes_total", "status", "business_unit").items()
                    if u == unit}
        mine_stored = await client.fetch(
            "SELECT status, count(*) AS n FROM outcomes WHERE payload->>'business_unit' = :u "
            "GROUP BY status", u=unit)
        assert outcomes == {row.status: row.n for row in mine_stored}
        latency = delta(by_label(after, "pinworks_end_to_end_seconds_count", "status"),
                        by_label(before, "pinworks_end_to_end_seconds_count", "status"))
        assert latency == {(row.status,): row.accepted for row in stored if row.accepted}

        # classifier: confidence and out-of-scope per unit, as recorded on the tickets
        classified = await client.fetch(
            "SELECT count(*) AS n, sum(confidence) AS conf, "
            "count(*) FILTER (WHERE (classification->>'out_of_scope')::boolean) AS oos "
            "FROM tickets WHERE business_unit = :u", u=unit)
        [row] = classified
        assert total(after, "pinworks_classifier_confidence_count", business_unit=unit) == row.n
        assert total(after, "pinworks_classifier_confidence_sum", business_unit=unit) == \
            pytest.approx(row.conf, abs=1e-4)
        assert total(after, "pinworks_classifier_classified_total", business_unit=unit,
                     out_of_scope="true") == row.oos >= 1

        # router: decisions per rule and handler
        routed = await client.fetch(
            "SELECT output->>'rule' AS rule, output->>'handler' AS handler, count(*) AS n "
            "FROM decisions WHERE id > :i AND stage = 'router' GROUP BY 1, 2", i=before_id.id)
        assert delta(by_label(after, "pinworks_routing_decisions_total", "rule", "handler"),
                     by_label(before, "pinworks_routing_decisions_total", "rule", "handler")) \
            == {(r.rule, r.handler): r.n for r in routed}

        # verifier: failures per check
        failed = await client.fetch(
            "SELECT c->>'check' AS check, count(*) AS n FROM decisions, "
            "jsonb_array_elements(output->'checks') c WHERE id > :i AND stage = 'verifier' "
            "AND NOT (c->>'passed')::boolean GROUP BY 1", i=before_id.id)
        assert delta(by_label(after, "pinworks_verifier_check_failures_total", "check"),
                     by_label(before, "pinworks_verifier_check_failures_total", "check")) \
            == {(r.check,): r.n for r in failed}

        # model endpoint: tokens as billed in the audit, calls as the server saw them
        usage = await client.fetch(
            "SELECT sum((output->'usage'->>'input_tokens')::int) AS input, "
            "sum((output->'usage'->>'output_tokens')::int) AS output FROM decisions "
            "WHERE id > :i AND component = 'specialist:llm_small'", i=before_id.id)
        tokens = delta(by_label(after, "pinworks_model_tokens_total", "endpoint", "direction"),
                       by_label(before, "pinworks_model_tokens_total", "endpoint", "direction"))
        assert tokens == {("llm_small", "input"): usage[0].input,
                          ("llm_small", "output"): usage[0].output}
        calls = delta(by_label(after, "pinworks_model_calls_total", "endpoint", "result"),
                      by_label(before, "pinworks_model_calls_total", "endpoint", "result"))
        server_calls = len(fake_llm.requests_containing(llm_ok)) + \
            len(fake_llm.requests_containing(llm_down))
        assert sum(calls.values()) == server_calls
        assert calls[("llm_small", "ok")] == 1 and calls[("llm_small", "http_error")] >= 1

        # escalation queue: what waits for a person, per unit
        waiting = await client.fetch(
            "SELECT count(*) AS n FROM escalations WHERE business_unit = :u "
            "AND status IN ('open', 'claimed')", u=unit)
        assert total(after, "pinworks_escalation_queue_depth", business_unit=unit) == \
            waiting[0].n >= 2
        assert total(after, "pinworks_escalation_oldest_ticket_age_seconds",
                     business_unit=unit) > 0

        # gauges every deployment alerts on are there
        for consumer in ("classifier", "router", "verifier", "escalation",
                         "specialist-llm_small"):
            assert ("pinworks_consumer_pending_messages",
                    frozenset({("stream", "PINWORKS_TICKETS" if consumer == "classifier"
                                else "PINWORKS_WORK"), ("consumer", consumer)})) in \
                {key for samples in after.values() for key in samples}, consumer
        assert total(after, "pinworks_classifier_drift_samples", distribution="intent") >= 1
        assert ("pinworks_model_circuit_state", frozenset({("endpoint", "llm_small")})) in \
            after["specialists"]

    await eventually(agrees)
    for samples in scrape_all(platform).values():
        assert not any(f"{rid}-" in value for _, labels in samples for _, value in labels), \
            "a ticket id in a label"


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
