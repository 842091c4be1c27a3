"""The private platform `pinworks chaos` breaks on purpose: embedded NATS and Postgres that can
be stopped and restarted, and the five services under the supervisor of `pinworks run`."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from pinworks_cli.launcher import ALL_SERVICES, _supervise_once, _Supervised
from pinworks_devtools import EmbeddedNats, EmbeddedPostgres, ServiceProcess, free_port


class Platform:
    """Embedded NATS and Postgres that can be restarted, and the supervised services."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.env = env or {}  # every service's settings over the fault tier's own
        self.nats = EmbeddedNats(workdir / "nats", secured=True)
        self.postgres = EmbeddedPostgres(workdir / "postgres")
        self.processes: dict[str, ServiceProcess] = {}
        self._supervising = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Each service connects as its own Postgres role, as under `pinworks run`."""
        from pinworks_common.db.migrate import provision_platform

        self.nats.start()
        self.postgres.start()
        logins = provision_platform(self.postgres.url, self.workdir / "db-credentials.json")
        env = {
            "NATS_URL": self.nats.url,
            "ESCALATION_CONSOLE_DATABASE_URL": logins["console"],
            "ESCALATION_HTTP_PORT": str(free_port()),
            "PINWORKS_ACK_WAIT_SECONDS": "10",
            "PINWORKS_LOG_LEVEL": "INFO",
            **self.env,
        }
        for name in ALL_SERVICES:
            self.processes[name] = ServiceProcess(
                name, {**env, "DATABASE_URL": logins[name], "PINWORKS_HEALTH_PORT": str(free_port()),
                       **self.nats.client_env(name)},
                self.workdir / "logs")
        for process in self.processes.values():
            process.start()
        for process in self.processes.values():
            process.wait_ready(120)
        self._supervising.set()
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        entries = [_Supervised(process) for process in self.processes.values()]
        while self._supervising.is_set():
            with self._lock:
                _supervise_once(entries, time.monotonic(), time.monotonic)
            time.sleep(0.5)

    def kill(self, name: str) -> None:
        with self._lock:
            self.processes[name].kill(signal.SIGKILL)

    def restart_nats(self) -> None:
        self.nats.stop()
        self.nats.start()

    def stop_postgres(self) -> None:
        self.postgres.stop()

    def start_postgres(self) -> None:
        self.postgres.start(timeout=120)

    def rss_mb(self) -> dict[str, float]:
        sizes = {}
        for name, process in self.processes.items():
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except (OSError, TypeError):
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    sizes[name] = int(line.split()[1]) / 1024
        return sizes

    def close(self) -> None:
        self._supervising.clear()
        if self._thread is not None:
            self._thread.join(5)
        for process in self.processes.values():
            process.stop()
        self.postgres.stop()
        self.nats.stop()
