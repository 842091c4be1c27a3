"""`pinworks top`: the services' Prometheus figures, live in a terminal, for someone without
Prometheus. It scrapes each service's `/metrics` every few seconds; rates are over the last
refresh, latencies are quantiles of the histogram buckets (since the previous scrape once there
is one, since the service started before)."""

from __future__ import annotations

import math
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.table import Table

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]


def parse_samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by name and label set."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def scrape(url: str, timeout: float = 2.0) -> Samples:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own URL
        return parse_samples(response.read().decode())


def scrape_all(urls: Mapping[str, str]) -> tuple[dict[str, Samples], dict[str, str]]:
    """Samples per service, and the error of each service that did not answer."""
    found: dict[str, Samples] = {}
    errors: dict[str, str] = {}
    for name, url in urls.items():
        try:
            found[name] = scrape(url)
        except (OSError, ValueError) as error:
            errors[name] = f"{type(error).__name__}: {error}"
    return found, errors


def parse_urls(spec: str) -> dict[str, str]:
    """`name=url,name=url` (as `pinworks run` writes PINWORKS_METRICS_URLS)."""
    urls = {}
    for part in spec.split(","):
        name, sep, url = part.strip().partition("=")
        if not sep or not url:
            if part.strip():
                raise ValueError(f"not name=url: {part!r}")
            continue
        urls[name.strip()] = url.strip()
    return urls


def series(scrapes: Mapping[str, Samples], name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """`name` summed over every service, by the values of `keys`."""
    found: dict[tuple[str, ...], float] = defaultdict(float)
    for samples in scrapes.values():
        for (sample, labels), value in samples.items():
            if sample == name:
                have = dict(labels)
                found[tuple(have.get(key, "") for key in keys)] += value
    return dict(found)


def quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """The `q` quantile of cumulative histogram buckets (upper bound -> count), interpolated
    linearly inside the bucket as Prometheus' histogram_quantile does."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, count
    return lower


def histogram_quantiles(now: Mapping[str, Samples], before: Mapping[str, Samples] | None,
                        name: str, key: str, q: float) -> dict[str, float | None]:
    """Per value of `key`: the `q` quantile of `name`'s buckets, over the last interval."""
    def buckets(scrapes: Mapping[str, Samples]) -> dict[str, dict[float, float]]:
        found: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
        for (group, le), value in series(scrapes, f"{name}_bucket", key, "le").items():
            found[group][float(le)] += value
        return found

    current = buckets(now)
    previous = buckets(before) if before else {}
    result = {}
    for group, counts in current.items():
        earlier = previous.get(group, {})
        window = {bound: count - earlier.get(bound, 0.0) for bound, count in counts.items()}
        if before is None or max(window.values(), default=0) <= 0:
            window = dict(counts)
        result[group] = quantile(window, q)
    return result


@dataclass
class Snapshot:
    """One refresh: the current scrape, the one before it and the seconds between them."""

    now: dict[str, Samples]
    before: dict[str, Samples] | None = None
    seconds: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)

    def rate(self, name: str, *keys: str) -> dict[tuple[str, ...], float | None]:
        current = series(self.now, name, *keys)
        if not self.before or self.seconds <= 0:
            return dict.fromkeys(current)
        previous = series(self.before, name, *keys)
        return {key: max(0.0, (value - previous.get(key, 0.0)) / self.seconds)
                for key, value in current.items()}


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _per_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/s"


def _n(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"


def _table(title: str, columns: Iterable[str]) -> Table:
    table = Table(title=title, title_justify="left", expand=False, pad_edge=False)
    for column in columns:
        table.add_column(column, justify="left" if column in {"consumer", "rule", "handler",
                                                                "unit", "component", "check",
                                                                "endpoint", "status", "kind",
                                                                "distribution", "circuit", "service", "error"}
                         else "right")
    return table


CIRCUIT = {0: "closed", 1: "half-open", 2: "open"}


def render(snapshot: Snapshot) -> Group:
    """Every figure the services export, as a few tables."""
    tables = [table(snapshot) for table in TABLES]
    return Group(*(table for table in tables if table is not None))


def _stages_table(snapshot: Snapshot) -> Table:
    """Per consumer: messages handled, failed, retried, dead-lettered; latency; lag."""
    now = snapshot.now
    stages = _table("stages", ["consumer", "handled", "rate", "p99", "failed", "retried",
                               "dead-lettered", "lag", "unacked"])
    results = series(now, "pinworks_stage_messages_total", "consumer", "result")
    rates = snapshot.rate("pinworks_stage_messages_total", "consumer", "result")
    p99 = histogram_quantiles(now, snapshot.before, "pinworks_stage_seconds", "consumer", 0.99)
    lag = {c: v for (c,), v in series(now, "pinworks_consumer_pending_messages",
                                      "consumer").items()}
    unacked = {c: v for (c,), v in series(now, "pinworks_consumer_ack_pending_messages",
                                          "consumer").items()}
    for consumer in sorted({c for c, _ in results} | set(lag)):
        stages.add_row(consumer, _n(results.get((consumer, "handled"), 0)),
                       _per_s(rates.get((consumer, "handled"))), _ms(p99.get(consumer)),
                       _n(results.get((consumer, "failed"), 0)),
                       _n(results.get((consumer, "retried"), 0)),
                       _n(results.get((consumer, "dead_lettered"), 0)),
                       _n(lag.get(consumer, 0)), _n(unacked.get(consumer, 0)))
    return stages


def _outcomes_table(snapshot: Snapshot) -> Table:
    """Outcomes by status, with end-to-end latency."""
    now = snapshot.now
    outcomes = _table("outcomes", ["status", "count", "rate", "end-to-end p50", "p99"])
    counts = series(now, "pinworks_outcomes_total", "status")
    outcome_rates = snapshot.rate("pinworks_outcomes_total", "status")
    p50s = histogram_quantiles(now, snapshot.before, "pinworks_end_to_end_seconds", "status", .5)
    p99s = histogram_quantiles(now, snapshot.before, "pinworks_end_to_end_seconds", "status", .99)
    for (status,), count in sorted(counts.items()):
        outcomes.add_row(status, _n(count), _per_s(outcome_rates.get((status,))),
                         _ms(p50s.get(status)), _ms(p99s.get(status)))
    return outcomes


def _classifier_table(snapshot: Snapshot) -> Table:
    """Per business unit: tickets classified, out of scope, mean confidence."""
    now = snapshot.now
    classifier = _table("classifier by unit", ["unit", "classified", "out of scope",
                                               "mean confidence"])
    classified = series(now, "pinworks_classifier_classified_total", "business_unit",
                        "out_of_scope")
    confidence_sum = series(now, "pinworks_classifier_confidence_sum", "business_unit")
    for unit in sorted({u for u, _ in classified}):
        all_count = classified.get((unit, "true"), 0) + classified.get((unit, "false"), 0)
        oos = classified.get((unit, "true"), 0)
        mean = confidence_sum.get((unit,), 0) / all_count if all_count else 0
        classifier.add_row(unit, _n(all_count), f"{oos / all_count:.1%}" if all_count else "-",
                           f"{mean:.3f}")
    return classifier


def _drift_table(snapshot: Snapshot) -> Table:
    """Drift of the classifier's inputs and outputs against its training data."""
    now = snapshot.now
    drift = _table("drift vs training (24 h)", ["distribution", "PSI", "samples"])
    psi = series(now, "pinworks_classifier_drift_psi", "distribution")
    samples = series(now, "pinworks_classifier_drift_samples", "distribution")
    for (distribution,), value in sorted(psi.items()):
        flag = " major shift" if value > 0.25 else " shift" if value > 0.1 else ""
        drift.add_row(distribution, f"{value:.3f}{flag}", _n(samples.get((distribution,), 0)))
    return drift


def _routing_table(snapshot: Snapshot) -> Table:
    """Routing decisions per rule and handler, most used first."""
    now = snapshot.now
    routing = _table("routing", ["rule", "handler", "decisions"])
    for (rule, handler), value in sorted(series(now, "pinworks_routing_decisions_total", "rule",
                                                "handler").items(), key=lambda kv: -kv[1]):
        routing.add_row(rule, handler, _n(value))
    return routing


def _verifier_table(snapshot: Snapshot) -> Table:
    """The verifier's failed checks and the specialists' intent disagreement rate."""
    now = snapshot.now
    verifier = _table("verifier", ["check", "failures"])
    for (check,), value in sorted(series(now, "pinworks_verifier_check_failures_total",
                                         "check").items()):
        verifier.add_row(check, _n(value))
    readings = sum(series(now, "pinworks_specialist_intent_readings_total").values())
    disagreements = sum(series(now, "pinworks_specialist_disagreements_total").values())
    if readings:
        verifier.add_row("disagreement rate", f"{disagreements / readings:.1%}")
    return verifier


def _models_table(snapshot: Snapshot) -> Table:
    """Model endpoints: calls, errors, latency, tokens and circuit state."""
    now = snapshot.now
    models = _table("model endpoints", ["endpoint", "calls", "errors", "p99", "tokens in",
                                        "tokens out", "circuit"])
    calls = series(now, "pinworks_model_calls_total", "endpoint", "result")
    tokens = series(now, "pinworks_model_tokens_total", "endpoint", "direction")
    call_p99 = histogram_quantiles(now, snapshot.before, "pinworks_model_call_seconds",
                                   "endpoint", 0.99)
    circuit = series(now, "pinworks_model_circuit_state", "endpoint")
    for endpoint in sorted({e for e, _ in calls} | {e for (e,) in circuit}):
        made = sum(v for (e, _), v in calls.items() if e == endpoint)
        errors = sum(v for (e, r), v in calls.items() if e == endpoint and r != "ok")
        state = circuit.get((endpoint,))
        models.add_row(endpoint, _n(made), _n(errors), _ms(call_p99.get(endpoint)),
                       _n(tokens.get((endpoint, "input"), 0)),
                       _n(tokens.get((endpoint, "output"), 0)),
                       CIRCUIT.get(int(state), "?") if state is not None else "-")
    return models


def _money_table(snapshot: Snapshot) -> Table:
    """Cost per unit and component, and each budget against its limit."""
    now = snapshot.now
    money = _table("cost and budgets", ["unit", "component", "cost USD", "budget", "used",
                                        "limit"])
    for (unit, component), value in sorted(series(now, "pinworks_cost_usd_total",
                                                  "business_unit", "component").items()):
        money.add_row(unit, component, f"{value:.6f}", "", "", "")
    limits = series(now, "pinworks_budget_limit", "business_unit", "handler", "kind")
    used = series(now, "pinworks_budget_used", "business_unit", "handler", "kind")
    for (unit, handler, kind), limit in sorted(limits.items()):
        spent = used.get((unit, handler, kind), 0)
        share = f" ({spent / limit:.0%})" if limit else ""
        money.add_row(unit, handler, "", kind, f"{_n(spent)}{share}", _n(limit))
    return money


def _queue_table(snapshot: Snapshot) -> Table:
    """The escalation queue per business unit: depth, oldest ticket, SLA breaches."""
    now = snapshot.now
    queue = _table("escalation queue", ["unit", "open", "claimed", "oldest", "past SLA"])
    depth = series(now, "pinworks_escalation_queue_depth", "business_unit", "status")
    oldest = series(now, "pinworks_escalation_oldest_ticket_age_seconds", "business_unit")
    breached = series(now, "pinworks_escalation_sla_breached_tickets", "business_unit")
    for unit in sorted({u for u, _ in depth}):
        age = oldest.get((unit,), 0)
        queue.add_row(unit, _n(depth.get((unit, "open"), 0)), _n(depth.get((unit, "claimed"), 0)),
                      f"{age / 60:.1f} min", _n(breached.get((unit,), 0)))
    return queue


def _errors_table(snapshot: Snapshot) -> Table | None:
    """The services whose /metrics did not answer."""
    if not snapshot.errors:
        return None
    down = _table("not answering", ["service", "error"])
    for name, error in sorted(snapshot.errors.items()):
        down.add_row(name, error)
    return down


TABLES: tuple[Callable[[Snapshot], Table | None], ...] = (
    _stages_table, _outcomes_table, _classifier_table, _drift_table, _routing_table,
    _verifier_table, _models_table, _money_table, _queue_table, _errors_table,
)
