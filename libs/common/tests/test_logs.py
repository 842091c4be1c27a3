"""Service logs: JSON lines off a terminal, colour only on one, ticket and trace on each line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from pinworks_common.logs import configure_logging, log_context, log_fields

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_off_a_terminal_every_line_is_json_with_ticket_and_trace() -> None:
    out = io.StringIO()
    configure_logging("router", "INFO", stream=out)
    log = logging.getLogger("pinworks.stage")
    log.warning("seq %d failed", 7, extra=log_fields(ticket_id="T-1", headers={
        "traceparent": TRACEPARENT}))
    with log_context(ticket_id="T-2", trace_id="abc"):
        log.info("inside")
    log.info("no ticket here")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second, third, fourth = _lines(out)
    assert first["message"] == "seq 7 failed" and first["level"] == "WARNING"
    assert (first["service"], first["ticket_id"], first["trace_id"]) == (
        "router", "T-1", "0af7651916cd43dd8448eb211c80319c")
    assert (second["ticket_id"], second["trace_id"]) == ("T-2", "abc")
    assert "ticket_id" not in third and "trace_id" not in third
    assert "ValueError: boom" in str(fourth["exception"])
    assert "\x1b[" not in out.getvalue()


def test_the_current_span_names_the_trace() -> None:
    out = io.StringIO()
    configure_logging("classifier", stream=out)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("classify") as span:
        logging.getLogger("pinworks.x").info("classified")
    [line] = _lines(out)
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")


def test_colour_only_on_a_terminal_and_faststream_logs_through_the_same_handler() -> None:
    from faststream._internal.logger.logging import logger as faststream_logger

    terminal = FakeTerminal()
    configure_logging("verifier", stream=terminal)
    logging.getLogger("pinworks.x").error("bad", extra=log_fields(ticket_id="T-9"))
    assert "\x1b[31mERROR\x1b[0m" in terminal.getvalue() and "ticket_id=T-9" in terminal.getvalue()

    plain = io.StringIO()
    configure_logging("verifier", stream=plain)
    faststream_logger.info("FastStream app started successfully")
    [line] = _lines(plain)
    assert line["logger"] == "faststream" and "\x1b[" not in plain.getvalue()


CARD, EMAIL, NAME = "4111 1111 1111 1111", "jane.okafor@example.org", "Jane Okafor"


def test_a_line_with_a_card_an_email_and_a_name_comes_out_redacted() -> None:
    out = io.StringIO()
    configure_logging("specialists", stream=out)
    log = logging.getLogger("pinworks.specialists")
    log.warning("ticket from %s paid with %s", NAME, CARD,
                extra={**log_fields(ticket_id="T-5"), "contact": EMAIL,
                       "details": {"payer": f"Mr {NAME}", "cards": [CARD]}})
    try:
        raise ValueError(f"cannot parse {EMAIL}")
    except ValueError:
        log.exception("failed for %s", NAME)
    text = out.getvalue()
    for value in (CARD, EMAIL, NAME, "Okafor"):
        assert value not in text, (value, text)
    first, second = _lines(out)
    assert first["message"] == "ticket from [NAME] paid with [CARD]"
    assert first["contact"] == "[EMAIL]" and first["ticket_id"] == "T-5"
    assert first["details"] == str({"payer": "[NAME]", "cards": ["[CARD]"]})
    assert second["message"] == "failed for [NAME]"
    assert "ValueError: cannot parse [EMAIL]" in str(second["exception"])


def test_terminal_lines_are_redacted_too_and_a_bad_format_does_not_leak_its_args() -> None:
    terminal = FakeTerminal()
    configure_logging("escalation", stream=terminal)
    log = logging.getLogger("pinworks.x")
    log.info("reply to %s", EMAIL)
    log.info("two slots %s %s", CARD)  # too few arguments: logging's own error path
    text = terminal.getvalue()
    assert "reply to [EMAIL]" in text
    assert "two slots %s %s (arguments: ('[CARD]',))" in text
    assert CARD not in text and CARD.replace(" ", "") not in text


def test_every_service_runtime_installs_the_redacting_filter() -> None:
    from pathlib import Path

    from pinworks_common.logs import RedactingFilter
    from pinworks_common.service import build_runtime
    from pinworks_common.settings import CommonSettings

    build_runtime("router", CommonSettings())  # connects to nothing until the app starts
    [handler] = logging.getLogger().handlers
    assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    services = Path(__file__).resolve().parents[3] / "services"
    apps = sorted(services.glob("*/src/pinworks_*/app.py"))
    assert len(apps) == 5
    for app in apps:
        assert "build_runtime(" in app.read_text(), f"{app} must build its runtime (and logging)"
