"""``run_platform`` end to end with stand-in services: start, crash recovery, clean SIGTERM."""

from __future__ import annotations

import os
import queue
import re
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pinworks_cli.launcher import backoff_delay
from pinworks_devtools import free_port

# run_platform takes NATS' and Postgres' default ports (4222/8222/5432) when they look free, as
# `make run` does: two of these at once both see 8222 free and one nats-server cannot bind it.
# Under pytest-xdist (`make test-unit`, --dist loadgroup) they all run on one worker, in turn.
pytestmark = pytest.mark.xdist_group("default-ports")

FAKE_MAIN = textwrap.dedent(
    """
    import os, signal, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path in ("/healthz", "/readyz") else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PINWORKS_HEALTH_PORT"])), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("fake", os.environ["NATS_URL"], os.environ["DATABASE_URL"], flush=True)
    print("llm_small", os.environ.get("LLM_SMALL_BASE_URL"), os.environ.get("LLM_SMALL_MODEL"),
          flush=True)
    server.serve_forever()
    """
)

RUNNER = textwrap.dedent(
    """
    import sys, types
    from pathlib import Path

    # The real migration and roles are the e2e suite's business; here only the call is checked.
    migrate = types.ModuleType("pinworks_common.db.migrate")
    migrate.upgrade = lambda url: print("[test] upgrade", url, flush=True)

    def provision_platform(url, credentials):
        print("[test] provision", url, credentials, flush=True)
        names = ("classifier", "router", "specialists", "verifier", "escalation", "console",
                 "operator", "reports", "migrations")
        return {name: url.replace("postgres:", f"pinworks_{name}:", 1) for name in names}

    migrate.provision_platform = provision_platform
    sys.modules["pinworks_common.db"] = types.ModuleType("pinworks_common.db")
    sys.modules["pinworks_common.db.migrate"] = migrate

    from pinworks_cli.launcher import run_platform

    raise SystemExit(run_platform(tuple(sys.argv[2:]) or ("classifier", "escalation"),
                                  Path(sys.argv[1])))
    """
)


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_delay(50) == 30.0


class _Lines:
    """Collects a subprocess' stdout on a thread so the test can wait for a line with a deadline."""

    def __init__(self, stream) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n{''.join(self.seen)}")


def _pid_alive(pid: int) -> bool:
    """Alive and not a zombie (orphans of a killed launcher may wait a while to be reaped)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start_runner(tmp_path: Path, workdir: Path, escalation_port: int,
                  services: tuple[str, ...] = ("classifier", "escalation"),
                  extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    fakes = tmp_path / "fakes"
    for name in services:
        package = fakes / f"pinworks_{name}"
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text("")
        (package / "__main__.py").write_text(FAKE_MAIN)
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(fakes), *filter(None, [os.environ.get("PYTHONPATH")]), *sys.path[1:]]
    )
    env["ESCALATION_HTTP_PORT"] = str(escalation_port)
    env.pop("LLM_SMALL_BASE_URL", None)
    env.update(extra_env or {})
    return subprocess.Popen(
        [sys.executable, str(runner), str(workdir), *services],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _kill_and_await_restart(out: _Lines, name: str, pid: int, ready_within: float = 60.0) -> int:
    """SIGKILL a supervised process and wait until the launcher has restarted it; its new pid."""
    os.kill(pid, signal.SIGKILL)
    out.wait_for(rf"{name} exited unexpectedly \(code -9\)")
    new_pid = int(out.wait_for(rf"restarted {name} \(pid (\d+)\)").group(1))
    out.wait_for(rf"{name} is ready again", timeout=ready_within)
    return new_pid


def _stop(proc: subprocess.Popen[str], out: _Lines) -> None:
    """SIGTERM the launcher; it stops the services, then NATS and Postgres, and exits 0."""
    proc.send_signal(signal.SIGTERM)
    out.wait_for(r"stopped NATS and Postgres")
    assert proc.wait(30) == 0


def _end(proc: subprocess.Popen[str]) -> None:
    """After a failed assertion: let the launcher clean up if it can, kill it if it cannot."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_run_platform_supervises_and_stops_cleanly(tmp_path: Path) -> None:
    escalation_port = free_port()
    workdir = tmp_path / "run"
    proc = _start_runner(tmp_path, workdir, escalation_port)
    try:
        out = _Lines(proc.stdout)
        out.wait_for(r"\[test\] provision postgresql://")
        out.wait_for(r"pinworks is running")
        classifier_pid = int(out.wait_for(r"^\s+classifier\s+(\d+)\s+http://").group(1))
        env_text = (workdir / "env").read_text()
        assert "NATS_URL=" in env_text
        # the support platform's identity, private; the operator's in a file of its own
        assert f"NATS_NKEY='{workdir / 'nats' / 'security' / 'support.nk'}'" in env_text
        assert "NATS_INBOX_PREFIX='_INBOX_support'" in env_text
        assert "operator.nk" in (workdir / "operator.env").read_text()
        for private in ("env", "operator.env", "nats/security/support.nk"):
            assert stat.S_IMODE((workdir / private).stat().st_mode) == 0o600, private
        assert "DATABASE_URL='postgresql://pinworks_operator:" in env_text, "the CLI's own role"
        sourced = subprocess.run(
            ["bash", "-c", f"source {workdir / 'env'} && command -v pinworks"],
            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=False)
        assert sourced.stdout.strip() == str(Path(sys.executable).parent / "pinworks"), (
            "`source .run/env` puts the CLI on PATH")

        new_pid = _kill_and_await_restart(out, "classifier", classifier_pid)
        assert new_pid != classifier_pid
        _stop(proc, out)
    finally:
        _end(proc)
    assert not _pid_alive(new_pid)
    assert not (workdir / "services.pids").exists()
    log = (workdir / "logs" / "classifier.log").read_text()
    assert log.count("starting pinworks_classifier") == 2
    assert "fake nats://127.0.0.1:" in log
    assert " postgresql://pinworks_classifier:" in log, "each service connects as its own role"


def test_run_platform_recovers_after_the_launcher_was_killed(tmp_path: Path) -> None:
    """``kill -9`` of ``make run`` leaves servers and services behind; the next run cleans up."""
    workdir = tmp_path / "run"
    first = _start_runner(tmp_path, workdir, free_port())
    try:
        out = _Lines(first.stdout)
        out.wait_for(r"pinworks is running")
        old_service = int(out.wait_for(r"^\s+classifier\s+(\d+)\s+http://").group(1))
        first.kill()
        first.wait(10)
    finally:
        _end(first)
    old_postgres = int((workdir / "postgres" / "pgdata" / "postmaster.pid").read_text().split()[0])
    assert _pid_alive(old_service) and _pid_alive(old_postgres)

    second = _start_runner(tmp_path, workdir, free_port())
    try:
        out = _Lines(second.stdout)
        out.wait_for(r"pinworks is running")
        assert not _pid_alive(old_service)
        assert not _pid_alive(old_postgres)
        second.send_signal(signal.SIGINT)
        assert second.wait(30) == 0
    finally:
        _end(second)


@pytest.mark.parametrize("services", [("nope",)])
def test_run_platform_rejects_unknown_services(services: tuple[str, ...], tmp_path: Path) -> None:
    from pinworks_cli.launcher import run_platform

    assert run_platform(services, tmp_path) == 2


def test_run_platform_starts_and_supervises_the_local_model(tmp_path: Path) -> None:
    """The real model server (llama-cpp-python over the bundled SmolLM2) beside a stand-in
    specialists service: its URL reaches the specialists, the banner and `.run/env`, it answers
    a chat completion with real usage, and a crash of it is restarted."""
    import httpx

    workdir = tmp_path / "run"
    proc = _start_runner(tmp_path, workdir, free_port(), ("specialists",),
                         {"PINWORKS_MODEL_PORT": str(free_port())})
    try:
        out = _Lines(proc.stdout)
        out.wait_for(r"started model \(pid \d+\)")
        out.wait_for(r"model is ready", timeout=120)
        url = out.wait_for(r"^\s+model\s+(http://127\.0\.0\.1:\d+/v1)\s+\(smollm2").group(1)
        model_pid = int(out.wait_for(r"^\s+model\s+(\d+)\s+http://").group(1))
        env_file = (workdir / "env").read_text()
        assert f"export PINWORKS_MODEL_URL='{url}'" in env_file
        log = (workdir / "logs" / "specialists.log").read_text()
        assert f"llm_small {url} smollm2-135m-instruct-q4_1" in log

        reply = httpx.post(f"{url}/chat/completions", timeout=60, json={
            "model": "smollm2-135m-instruct-q4_1", "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hello."}]}).json()
        assert reply["model"] == "smollm2-135m-instruct-q4_1"
        assert reply["usage"]["prompt_tokens"] > 0 and 0 < reply["usage"]["completion_tokens"] <= 8

        _kill_and_await_restart(out, "model", model_pid, ready_within=120)
        _stop(proc, out)
    finally:
        _end(proc)
    assert not _pid_alive(model_pid)


def test_llm_small_base_url_set_means_no_local_model(tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    proc = _start_runner(tmp_path, workdir, free_port(), ("specialists",),
                         {"LLM_SMALL_BASE_URL": "http://127.0.0.1:9/v1", "LLM_SMALL_MODEL": "x"})
    try:
        out = _Lines(proc.stdout)
        out.wait_for(r"llm_small uses http://127\.0\.0\.1:9/v1 \(LLM_SMALL_BASE_URL\); no local model")
        out.wait_for(r"pinworks is running")
        assert "PINWORKS_MODEL_URL" not in (workdir / "env").read_text()
        assert not any(re.match(r"^\s+model\s", line) for line in out.seen)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        _end(proc)
