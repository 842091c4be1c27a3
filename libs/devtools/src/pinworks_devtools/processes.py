"""Process plumbing the dev servers share: loopback ports, readiness polls, stopping processes.

Every wait here polls a condition against a deadline; nothing sleeps a fixed time to "be sure".
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Self

_log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
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


def preferred_or_free(port: int, prefer: bool) -> int:
    return port if prefer and port_is_free(port) else free_port()


def _tail(path: Path, chars: int = _LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-chars:]


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """One GET; True only on HTTP 200. urllib keeps pinworks-devtools free of an HTTP client dep."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def tcp_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
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


def terminate(proc: subprocess.Popen[bytes], sig: int, timeout: float, *, group: bool = False) -> int | None:
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


def process_matches(pid: int, needle: str) -> bool:
    """Whether ``pid`` is alive and its command line mentions ``needle``.

    Guards against signalling an unrelated process that reused a stale pid from a pid file.
    """
    try:
        import psutil  # a dependency of pgserver, so of pinworks-devtools
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
    if pid == os.getpid() or not process_matches(pid, needle):
        return
    _log.warning("stopping stale server pid %s (%s)", pid, needle)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while process_matches(pid, needle):
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(_POLL_INTERVAL)


class ProcessHandle:
    """The child process an object started (none before it starts or after it stops)."""

    _proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


class ManagedServer(ProcessHandle):
    """Process and context-manager plumbing shared by the embedded servers: a server starts its
    process with `_spawn` and stops it with `_stop_with` its own shutdown signal."""

    log_path: Path
    _log_file: IO[bytes] | None = None

    def _spawn(self, args: list[str], **popen: Any) -> None:
        """Start ``args`` in a session of its own, appending its output to ``log_path``."""
        self._log_file = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen,
        )

    def _stop_with(self, sig: int, timeout: float) -> None:
        """Send ``sig``, SIGKILL after ``timeout``, and close the log."""
        if self._proc is not None:
            terminate(self._proc, sig, timeout)
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

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

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

