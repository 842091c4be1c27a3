"""A pinworks service as a supervised subprocess (the launcher, the e2e and chaos tiers)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Self

from pinworks_devtools.processes import (
    LOOPBACK,
    ProcessHandle,
    free_port,
    http_ok,
    port_is_free,
    terminate,
    wait_until,
)


class ServiceProcess(ProcessHandle):
    """One pinworks service as a subprocess in its own process group, logging to a file.

    Its own group lets us signal the service and anything it spawned, and keeps a terminal's
    Ctrl-C from reaching it directly, so the launcher decides the shutdown order.
    """

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        log_dir: Path,
        *,
        module: str | None = None,
    ) -> None:
        self.name = name
        self.module = module or f"pinworks_{name}"
        self.env = dict(env)
        if not self.env.get("PINWORKS_HEALTH_PORT"):
            self.env["PINWORKS_HEALTH_PORT"] = str(free_port())
        self.health_port = int(self.env["PINWORKS_HEALTH_PORT"])
        base = f"http://{LOOPBACK}:{self.health_port}"
        self.health_url, self.ready_url, self.metrics_url = (
            f"{base}/healthz", f"{base}/readyz", f"{base}/metrics")
        self.log_dir = Path(log_dir)
        self.log_path = self.log_dir / f"{name}.log"
        self.starts = 0
        self._proc = None
        self._log_file: IO[bytes] | None = None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def start(self) -> Self:
        if self.is_running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._close_log()
        if self.starts and not port_is_free(self.health_port):
            self.env["PINWORKS_HEALTH_PORT"] = str(free_port())
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        from datetime import UTC, datetime

        # A JSON line like the service's own (pinworks_common.logs), so the file stays parseable.
        started = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "level": "INFO",
                   "service": self.name, "logger": "pinworks.launcher",
                   "message": f"starting {self.module}", "start": self.starts + 1}
        self._log_file.write((json.dumps(started) + "\n").encode())
        self._log_file.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self._proc = subprocess.Popen(
            self.command(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1
        return self

    def command(self) -> list[str]:
        """The argv to start; a subclass may run another Python module with arguments."""
        return [sys.executable, "-m", self.module]

    def check_ready(self) -> bool:
        """One non-blocking-ish probe of ``/readyz`` (for supervisors polling many services)."""
        return self.is_running and http_ok(self.ready_url, timeout=0.5)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once ``/readyz`` answers 200; raise with the log tail if it dies or times out."""
        wait_until(
            lambda: http_ok(self.ready_url, timeout=0.5),
            timeout=timeout,
            what=f"service {self.name}",
            alive=lambda: self.is_running,
            log=self.log_path,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a crash, for tests, when ``sig`` is SIGKILL)."""
        if self._proc is None or self._proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the process to exit; its exit code, or None if still running at the deadline."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM to the group, SIGKILL after ``timeout``; returns the exit code."""
        code: int | None = None
        if self._proc is not None:
            code = terminate(self._proc, signal.SIGTERM, timeout, group=True)
        self._close_log()
        return code

    def restart(self, timeout: float = 10.0) -> Self:
        self.stop(timeout)
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __repr__(self) -> str:
        return f"ServiceProcess({self.name!r}, pid={self.pid}, health_port={self.health_port})"
