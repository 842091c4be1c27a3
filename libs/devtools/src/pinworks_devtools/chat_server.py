"""A real HTTP server speaking the chat-completions protocol, for tests and local trials.

It listens on 127.0.0.1 (a free port by default), records every request, and answers from a
script: rules match a substring of the request's messages and serve their replies in order (the
last one repeats). Replies can be slow, carry any status, headers or body (malformed ones too),
or be computed from the request. It is test tooling: nothing in the service imports it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Body = bytes | dict[str, Any] | Callable[[dict[str, Any]], bytes | dict[str, Any]]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Body = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


def completion(content: str, prompt_tokens: int | None = 120, completion_tokens: int | None = 40,
               model: str = "scripted-model", finish_reason: str = "stop") -> dict[str, Any]:
    """A chat-completions reply body; `prompt_tokens=None` leaves `usage` out."""
    body: dict[str, Any] = {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": content}}],
    }
    if prompt_tokens is not None and completion_tokens is not None:
        body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                         "total_tokens": prompt_tokens + completion_tokens}
    return body


PASSAGE_LINE = re.compile(r"^\[([a-z0-9][a-z0-9\-]*#\d+)\] ", re.MULTILINE)


def given_passages(request: dict[str, Any]) -> list[str]:
    """The passage ids listed in a request's user message, in order."""
    text = "\n".join(str(m.get("content", "")) for m in request.get("messages", []))
    return PASSAGE_LINE.findall(text)


def citing_first_passage(request: dict[str, Any]) -> dict[str, Any]:
    """A scripted reply that cites the first passage the request gave."""
    ids = given_passages(request)
    cited = f" [{ids[0]}]" if ids else ""
    return completion(
        "Hi there,\n\nThanks for your message. Here is what our help centre says about "
        f"this, and what you can do next{cited}.\n\nBest wishes,\nLarkspur Bank Support")


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes
    json: dict[str, Any] | None
    at: float


class ChatServer:
    """Start with :meth:`start` (or as a context manager); ``base_url`` ends in ``/v1``."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply(500, {"error": {"message": "no scripted reply"}})
        self.requests: list[Recorded] = []
        self._rules: list[tuple[str, list[Reply]]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._in_flight = 0
        self.max_in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # scripting
    def when(self, contains: str, *replies: Reply) -> None:
        """Requests whose messages contain `contains` get `replies` in order (the last repeats)."""
        with self._lock:
            self._rules.append((contains, list(replies)))

    def requests_containing(self, text: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if text.encode() in r.body]

    def _next_reply(self, raw: bytes) -> Reply:
        with self._lock:
            for contains, replies in self._rules:
                if contains.encode() in raw:
                    return replies.pop(0) if len(replies) > 1 else replies[0]
        return self.default

    # lifecycle
    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self, port: int = 0) -> ChatServer:
        server = _Server(("127.0.0.1", port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="chat-server",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # serving
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            decoded = json.loads(raw)
            parsed: dict[str, Any] | None = decoded if isinstance(decoded, dict) else None
        except ValueError:
            parsed = None
        with self._lock:
            self.requests.append(Recorded(handler.path, dict(handler.headers.items()), raw,
                                          parsed, time.monotonic()))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if handler.path.rstrip("/") != "/v1/chat/completions" or handler.command != "POST":
                reply = Reply(404, {"error": {"message": f"no route {handler.path}"}})
            else:
                reply = self._next_reply(raw)
            if reply.delay_seconds and self._closing.wait(reply.delay_seconds):
                return
            body = reply.body(parsed or {}) if callable(reply.body) else reply.body
            payload = json.dumps(body).encode() if isinstance(body, dict) else body
            try:
                handler.send_response(reply.status)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    handler.send_header(name, value)
                handler.end_headers()
                handler.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout); nothing to answer
        finally:
            with self._lock:
                self._in_flight -= 1


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default listen backlog (5) drops bursts of connections


def _make_handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            server._serve(self)

        def do_GET(self) -> None:  # noqa: N802
            server._serve(self)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    return Handler
