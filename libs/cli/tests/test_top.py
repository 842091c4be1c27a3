import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from rich.console import Console
from typer.testing import CliRunner

from pinworks_cli.main import app
from pinworks_cli.top import Snapshot, parse_urls, quantile, render, scrape


def test_quantiles_interpolate_inside_a_bucket_like_prometheus() -> None:
    buckets = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, float("inf"): 100.0}
    assert quantile(buckets, 0.5) == pytest.approx(0.1)
    assert quantile(buckets, 0.7) == pytest.approx(0.1 + 0.4 * (20 / 40))
    assert quantile(buckets, 0.99) == pytest.approx(0.5 + 0.5 * 0.9)
    assert quantile({1.0: 0.0, float("inf"): 0.0}, 0.5) is None


def test_urls_come_as_name_equals_url() -> None:
    assert parse_urls("a=http://x/metrics, b=http://y/metrics,") == {
        "a": "http://x/metrics", "b": "http://y/metrics"}
    with pytest.raises(ValueError, match="not name=url"):
        parse_urls("http://x/metrics")


def exporter() -> CollectorRegistry:
    """A registry shaped like a service's, with known figures."""
    registry = CollectorRegistry()
    messages = Counter("pinworks_stage_messages_total", "", ["stage", "consumer", "result"],
                       registry=registry)
    messages.labels("router", "router", "handled").inc(40)
    messages.labels("router", "router", "dead_lettered").inc(2)
    seconds = Histogram("pinworks_stage_seconds", "", ["stage", "consumer"],
                        buckets=(0.01, 0.1, 1.0), registry=registry)
    for _ in range(40):
        seconds.labels("router", "router").observe(0.05)
    Gauge("pinworks_consumer_pending_messages", "", ["stream", "consumer"],
          registry=registry).labels("PINWORKS_WORK", "router").set(7)
    Counter("pinworks_routing_decisions_total", "", ["rule", "handler"],
            registry=registry).labels("card-help", "template").inc(40)
    Gauge("pinworks_classifier_drift_psi", "", ["distribution"],
          registry=registry).labels("intent").set(0.31)
    Gauge("pinworks_escalation_queue_depth", "", ["business_unit", "status"],
          registry=registry).labels("retail", "open").set(3)
    return registry


@pytest.fixture
def metrics_url() -> str:  # type: ignore[misc]
    body = generate_latest(exporter())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()


def test_render_shows_every_figure(metrics_url: str) -> None:
    now = {"router": scrape(metrics_url)}
    console = Console(width=200, record=True)
    console.print(render(Snapshot(now, errors={"verifier": "ConnectionRefusedError"})))
    text = console.export_text()
    rows = [line.replace("│", " ").split() for line in text.splitlines()]
    [router] = [row for row in rows if row[:1] == ["router"]]
    # consumer, handled, rate (one scrape: none), p99, failed, retried, dead-lettered, lag, unacked
    assert router == ["router", "40", "-", "99", "ms", "0", "0", "2", "7", "0"], \
        "p99 of 40 observations in the (0.01, 0.1] bucket: 0.01 + 0.09 * 0.99"
    assert "card-help" in text and "0.310 major shift" in text
    assert "retail" in text and "ConnectionRefusedError" in text


def test_rates_are_over_the_last_refresh(metrics_url: str) -> None:
    now = {"router": scrape(metrics_url)}
    before = {"router": {key: value / 2 for key, value in now["router"].items()}}
    snapshot = Snapshot(now, before, seconds=2.0)
    rates = snapshot.rate("pinworks_stage_messages_total", "consumer", "result")
    assert rates[("router", "handled")] == pytest.approx(10.0)


def test_top_once_prints_a_snapshot(metrics_url: str) -> None:
    result = CliRunner().invoke(app, ["top", "--once", "--url", f"router={metrics_url}"])
    assert result.exit_code == 0, result.output
    assert "card-help" in result.output
    down = CliRunner().invoke(app, ["top", "--once", "--url", "router=http://127.0.0.1:9/m"])
    assert down.exit_code == 1 and "not answering" in down.output
