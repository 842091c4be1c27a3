"""Serving the console inside the escalation service's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

log = logging.getLogger("pinworks.escalation.console")


class _EmbeddedServer(uvicorn.Server):
    """Uvicorn inside the FastStream event loop: FastStream owns the process signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ConsoleServer:
    """Starts and stops the console in the running event loop; a port in use fails the start."""

    def __init__(self, app: FastAPI, host: str, port: int, *,
                 forwarded_allow_ips: str = "") -> None:
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: only the
        # configured proxies may name the client
        trusted = [part.strip() for part in forwarded_allow_ips.split(",") if part.strip()]
        self._config = uvicorn.Config(app, host=host, port=port, lifespan="off",
                                      access_log=False, log_config=None,
                                      proxy_headers=bool(trusted),
                                      forwarded_allow_ips=trusted or None)
        self._host, self._port = host, port
        self._server: _EmbeddedServer | None = None
        self._serving: Any = None

    async def start(self) -> None:
        sock = socket.create_server((self._host, self._port), reuse_port=False)
        self._server = _EmbeddedServer(self._config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
                raise RuntimeError("the console stopped while starting")
            await asyncio.sleep(0.02)
        log.info("agents' console on http://%s:%d/", self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
