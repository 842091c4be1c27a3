"""A small HTTP responder for `/healthz` (alive), `/readyz` (able to work) and `/metrics`
(the Prometheus exposition of the service's registry).

Kubernetes probes, the launcher and Prometheus poll these; the check runs in the service's own
event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pinworks_common.metrics import exposition
from pinworks_common.settings import LOCAL_BIND

ReadinessCheck = Callable[[], Awaitable[bool]]


class HealthServer:
    def __init__(self, port: int, ready: ReadinessCheck, host: str = LOCAL_BIND) -> None:
        self._port = port
        self._host = host
        self._ready = ready
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b""):
                pass
            path = request_line.split()[1].decode() if len(request_line.split()) > 1 else "/"
            if path.startswith("/metrics"):
                status, body, content_type = "200 OK", *exposition()
            else:
                status, text = await self._answer(path)
                body, content_type = text.encode(), "text/plain"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, path: str) -> tuple[str, str]:
        if path.startswith("/healthz"):
            return "200 OK", "ok"
        if path.startswith("/readyz"):
            try:
                ready = await asyncio.wait_for(self._ready(), timeout=5)
            except Exception:  # noqa: BLE001 - any failure means not ready
                ready = False
            return ("200 OK", "ready") if ready else ("503 Service Unavailable", "not ready")
        return "404 Not Found", "not found"
