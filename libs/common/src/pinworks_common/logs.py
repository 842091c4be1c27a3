"""Service logs: one JSON object per line when the output is a file or a pipe (what log shippers
read), readable lines with colour only on a terminal. Every line carries the ticket id and
trace id when the code that logs knows them: passed as ``extra=log_fields(...)``, set for a block
with `log_context`, or taken from the current OpenTelemetry span. No line carries personal data:
`RedactingFilter` replaces it in the message, its arguments, every extra field and the exception
text with typed placeholders (``[CARD]``) before any formatter sees the record.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from pinworks_common.personal_data import redact, redact_value

_ticket_id: ContextVar[str | None] = ContextVar("pinworks_log_ticket_id", default=None)
_trace_id: ContextVar[str | None] = ContextVar("pinworks_log_trace_id", default=None)

# FastStream's access logs pass these as `extra`; they say which message a line is about.
_MESSAGE_FIELDS = ("subject", "queue", "stream", "message_id", "channel")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


@contextmanager
def log_context(*, ticket_id: str | None = None, trace_id: str | None = None) -> Iterator[None]:
    """Every line logged inside the block names this ticket and trace."""
    tokens = (_ticket_id.set(ticket_id), _trace_id.set(trace_id))
    try:
        yield
    finally:
        _ticket_id.reset(tokens[0])
        _trace_id.reset(tokens[1])


def trace_id_from_headers(headers: Mapping[str, str] | None) -> str | None:
    """The trace id of a W3C `traceparent` header (version-traceid-spanid-flags)."""
    parts = (headers or {}).get("traceparent", "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def log_fields(*, ticket_id: str | None = None, trace_id: str | None = None,
               headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """``extra=`` for one log call: the ticket and the trace (from the headers if not given)."""
    fields = {"ticket_id": ticket_id, "trace_id": trace_id or trace_id_from_headers(headers)}
    return {key: value for key, value in fields.items() if value}


def _current_span_trace_id() -> str | None:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class ContextFilter(logging.Filter):
    """Puts service, ticket id and trace id on every record that does not carry them yet."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        if not getattr(record, "ticket_id", None):
            record.ticket_id = _ticket_id.get()
        if not getattr(record, "trace_id", None):
            record.trace_id = _trace_id.get() or _current_span_trace_id()
        return True


_NOT_PERSONAL = frozenset({"service", "trace_id", "span_id", "subject", "queue", "stream"})
"""Fields set from the platform's own names and ids (NATS subjects, hex trace ids), never from a
customer's text: left as they are, since reading them costs the most (long hex runs)."""


def _redact_text(text: str) -> str:
    return redact(text)[0]


class RedactingFilter(logging.Filter):
    """Personal data out of every record, whichever logger made it: the message with its
    arguments merged in, every extra field (strings, and strings inside dicts and lists; other
    objects as their text) and the exception and stack text. Installed on the handler, so
    FastStream's and uvicorn's records pass through it too."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: both as they are
            message = f"{record.msg} (arguments: {record.args!r})"
        record.msg, record.args = _redact_text(message), None
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD or key in _NOT_PERSONAL or value is None:
                continue
            if isinstance(value, str | dict | list | tuple):
                record.__dict__[key] = redact_value(value)
            elif not isinstance(value, int | float | bool):
                record.__dict__[key] = _redact_text(str(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = _redact_text(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "service", "logger", "message", "ticket_id", "trace_id", ...}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": getattr(record, "service", None),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("ticket_id", "trace_id", *_MESSAGE_FIELDS):
            value = getattr(record, key, None)
            if value:
                entry[key] = str(value)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry and key != "service" and value not in (
                    None, ""):
                entry[key] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_text:  # set, and redacted, by RedactingFilter
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


_COLOURS = {"DEBUG": "\x1b[2m", "INFO": "\x1b[32m", "WARNING": "\x1b[33m", "ERROR": "\x1b[31m",
            "CRITICAL": "\x1b[1;31m"}


class TerminalFormatter(logging.Formatter):
    """A readable line, the level in colour, the ticket and trace at the end."""

    def __init__(self, colour: bool = True) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{key}={getattr(record, key)}" for key in ("ticket_id", "trace_id")
                       if getattr(record, key, None))
        if ids:
            line = f"{line}  [{ids}]"
        if self.colour and record.levelname in _COLOURS:
            line = line.replace(record.levelname, f"{_COLOURS[record.levelname]}"
                                f"{record.levelname}\x1b[0m", 1)
        return line


def configure_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every logger (FastStream's too) through one handler, JSON unless on a terminal,
    whose every record is redacted of personal data."""
    stream = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(stream)
    on_terminal = bool(getattr(stream, "isatty", lambda: False)())
    handler.setFormatter(TerminalFormatter() if on_terminal else JsonFormatter())
    handler.addFilter(ContextFilter(service))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("faststream") and isinstance(logger, logging.Logger):
            for existing in list(logger.handlers):
                logger.removeHandler(existing)  # FastStream's own handlers always colour
            logger.propagate = True
