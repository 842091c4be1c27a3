"""``pinworks run``: the whole platform on one machine, with nothing but Python installed.

NATS and Postgres come from the environment or the embedded servers (never Docker, so
``make run`` behaves the same everywhere); their data lives under ``workdir`` and survives
restarts. Each service is its own process, supervised: a crash is reported and the service is
restarted with backoff, a bounded number of times. So is the local model server the specialists
use as `llm_small` (see `localmodel.py`), unless ``LLM_SMALL_BASE_URL`` names another endpoint or
``PINWORKS_LOCAL_MODEL=0``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from pinworks_cli.localmodel import (
    MODEL_SERVER_MODULE,
    LocalModelConfig,
    LocalModelServer,
    LocalModelUnavailable,
)
from pinworks_common.nats_client import (
    NatsClientSettings,
    connect_options,
    ensure_platform_consumer,
)
from pinworks_contracts.identities import DEFAULT_PLATFORM, OPERATOR
from pinworks_devtools import (
    Infrastructure,
    ServiceProcess,
    free_port,
    port_is_free,
    resolve_infrastructure,
    stop_stale_process,
)

ALL_SERVICES: tuple[str, ...] = ("classifier", "router", "specialists", "verifier", "escalation")
DEFAULT_ESCALATION_PORT = 8000
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
SUPERVISE_INTERVAL = 0.5
MAX_RESTARTS = 5
"""Restarts allowed per service inside ``RESTART_WINDOW``; past that it stays down."""
RESTART_WINDOW = 300.0
BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0
EXAMPLE_COMMANDS = (
    'submit "I was charged twice for my card fee" --ticket-id T-1 --business-unit retail',
    "audit T-1",
    "queue list",
    "top",
)


class _Shutdown(Exception):
    """Raised from the SIGTERM handler so SIGTERM unwinds exactly like Ctrl-C."""


def _say(message: str) -> None:
    print(f"[pinworks] {message}", flush=True)


def backoff_delay(failures: int) -> float:
    """Seconds to wait before restart number ``failures`` (1-based): 1, 2, 4, ... capped."""
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, failures - 1)))


@dataclass
class _Supervised:
    process: ServiceProcess
    recent_failures: list[float] = field(default_factory=list)
    restart_at: float | None = None
    awaiting_ready: bool = False
    given_up: bool = False


def _escalation_port() -> int:
    configured = os.environ.get("ESCALATION_HTTP_PORT")
    if configured:
        return int(configured)
    if port_is_free(DEFAULT_ESCALATION_PORT):
        return DEFAULT_ESCALATION_PORT
    return free_port()


def _service_env(name: str, infra: Infrastructure, escalation_port: int,
                 model: LocalModelServer | None = None,
                 logins: dict[str, str] | None = None) -> dict[str, str]:
    """A service's environment; with `logins` (per-role URLs) it connects as its own role."""
    env = {
        "NATS_URL": infra.nats_url,
        "DATABASE_URL": logins[name] if logins else infra.database_url,
        "PINWORKS_HEALTH_PORT": str(free_port()),
        **infra.nats.client_env(name),
    }
    if name == "escalation":
        env["ESCALATION_HTTP_PORT"] = str(escalation_port)
        if logins:
            env["ESCALATION_CONSOLE_DATABASE_URL"] = logins["console"]
    if name == "specialists" and model is not None:
        env.update(model.specialist_env())
    return env


def _local_model(log_dir: Path, environ: dict[str, str] | None = None) -> LocalModelServer | None:
    """The model server to start, or None: disabled, another `llm_small` endpoint configured,
    or not installed (then `llm_small` declines as unavailable and its tickets fall back)."""
    environ = dict(os.environ) if environ is None else environ
    config = LocalModelConfig.from_env(environ)
    if not config.enabled:
        _say("local model disabled (PINWORKS_LOCAL_MODEL=0): llm_small tickets fall back")
        return None
    if environ.get("LLM_SMALL_BASE_URL"):
        _say(f"llm_small uses {environ['LLM_SMALL_BASE_URL']} (LLM_SMALL_BASE_URL); "
             "no local model started")
        return None
    try:
        return LocalModelServer(config, log_dir)
    except LocalModelUnavailable as exc:
        _say(f"no local model: {exc}; llm_small tickets fall back")
        return None


def _write_env_file(workdir: Path, infra: Infrastructure, escalation_port: int,
                    processes: Sequence[ServiceProcess] = (),
                    model: LocalModelServer | None = None,
                    logins: dict[str, str] | None = None) -> Path:
    """Let other terminals ``source .run/env`` to talk to this platform, with ``pinworks`` (the
    virtualenv's bin directory) on their PATH (`pinworks top` reads the services' metrics
    endpoints from it). The CLI connects as the operator's role; the file holds its password,
    so it is private (mode 0600) like ``db-credentials.json``."""
    path = workdir / "env"
    metrics = ",".join(f"{proc.name}={proc.metrics_url}" for proc in processes)
    database_url = logins["operator"] if logins else infra.database_url
    identity = [f"export {name}='{value}'"
                for name, value in infra.nats.client_env(DEFAULT_PLATFORM).items()]
    lines = [
        f"export NATS_URL='{infra.nats_url}'",
        *identity,
        # the platform whose submission subject (tickets.submitted.<platform>) the CLI uses
        f"export PINWORKS_PLATFORM='{DEFAULT_PLATFORM}'",
        f"export DATABASE_URL='{database_url}'",
        f"export ESCALATION_URL='http://127.0.0.1:{escalation_port}'",
        f"export PINWORKS_METRICS_URLS='{metrics}'",
        f"export PATH='{Path(sys.executable).parent}':\"$PATH\"",
    ]
    if model is not None:
        lines += [f"export PINWORKS_MODEL_URL='{model.base_url}'",
                  f"export PINWORKS_MODEL_NAME='{model.model_name}'"]
    _write_private(path, "\n".join(lines) + "\n")
    if infra.nats.security is not None:
        operator = [f"export {name}='{value}'"
                    for name, value in infra.nats.client_env(OPERATOR).items()]
        _write_private(workdir / "operator.env", "\n".join(operator) + "\n")
    return path


def _write_private(path: Path, text: str) -> None:
    """Write `path` readable by its owner only: it names identities' seed files."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _nats_identity_notice(infra: Infrastructure) -> None:
    """Loud when the platform's NATS takes clients without credentials."""
    if infra.nats.security is not None:
        _say(f"NATS requires TLS and an nkey identity per client (identities in "
             f"{infra.nats.security.directory}); `source .run/env` acts as support platform "
             f"'{DEFAULT_PLATFORM}', `source .run/operator.env` as an operator")
        return
    if not NatsClientSettings.from_env(os.environ).authenticated:
        _say("WARNING " + "!" * 60)
        _say(f"WARNING: NATS_URL={infra.nats_url} and no NATS_NKEY / NATS_CREDS / NATS_USER: the "
             "services connect WITHOUT CREDENTIALS. Anyone who reaches that server can forge "
             "tickets, outcomes and policies. Development only.")
        _say("WARNING " + "!" * 60)


def _prepare_nats(infra: Infrastructure) -> None:
    """As the operator: the streams, and the support platform's outcome consumer (its identity
    may read that consumer, not create it)."""
    if infra.nats.security is None:
        return
    import asyncio

    import nats

    from pinworks_common.streams import declare_streams

    async def prepare() -> None:
        nc = await nats.connect(infra.nats_url, **connect_options(infra.nats.client_env(OPERATOR)))
        try:
            await declare_streams(nc.jetstream())
            await ensure_platform_consumer(nc.jetstream(), DEFAULT_PLATFORM)
        finally:
            await nc.close()

    asyncio.run(prepare())


def format_summary(
    infra: Infrastructure,
    processes: Sequence[ServiceProcess],
    escalation_port: int | None,
    env_file: Path,
    model: LocalModelServer | None = None,
) -> str:
    """The banner printed once everything is ready: where each thing is, and what to try."""
    lines = [
        "",
        "pinworks is running",
        "",
        f"  NATS        {infra.nats_url}",
    ]
    if infra.nats_monitor_url:
        lines.append(f"  monitoring  {infra.nats_monitor_url}  (/jsz, /connz, /healthz)")
    lines += [
        f"  Postgres    {_without_password(infra.database_url)}  (one login per service; "
        "passwords in db-credentials.json beside the env file)",
        f"  sources     {infra.description}",
    ]
    if escalation_port is not None and any(p.name == "escalation" for p in processes):
        lines.append(f"  escalation console http://127.0.0.1:{escalation_port}/  "
                     f"(API docs /docs; add an agent: pinworks agent add NAME --business-unit X)")
    if model is not None:
        lines.append(f"  model       {model.base_url}  ({model.model_name}, the llm_small tier; "
                     f"{model.config.threads}+{model.config.batch_threads} threads)")
    lines += [
        "",
        f"  {'service':<12} {'pid':>7}  {'metrics (Prometheus)':<38} log",
    ]
    if model is not None:
        lines.append(f"  {model.name:<12} {model.pid or '-':>7}  {model.health_url:<38} "
                     f"{model.log_path}")
    for proc in processes:
        lines.append(f"  {proc.name:<12} {proc.pid or '-':>7}  {proc.metrics_url:<38} {proc.log_path}")
    lines += [
        "  (the same port serves /healthz and /readyz; `pinworks top` shows the figures live)",
        "",
        "  In another terminal:",
        f"    source {env_file}",
        *(f"    pinworks {command}" for command in EXAMPLE_COMMANDS),
        "",
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def _without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _database_logins(infra: Infrastructure, workdir: Path) -> dict[str, str] | None:
    """Migrate; on the embedded Postgres also give every role its login (passwords generated
    once into ``db-credentials.json``, mode 0600) and return each login's URL. A
    ``DATABASE_URL`` of the operator's own is migrated and shared by every service."""
    from pinworks_common.db import migrate

    _say("migrating the database to the latest schema ...")
    if not infra.database.source.startswith("embedded"):
        migrate.upgrade(infra.database_url)
        _say("WARNING: every service shares DATABASE_URL's login; give each its own role "
             "(README, security model) or use the embedded Postgres")
        return None
    logins = migrate.provision_platform(infra.database_url, workdir / "db-credentials.json")
    _say("each service connects as its own Postgres role")
    return logins


def _install_signal_handlers() -> dict[int, Any]:
    def on_term(signum: int, frame: FrameType | None) -> None:
        raise _Shutdown(signal.Signals(signum).name)

    previous: dict[int, Any] = {
        signal.SIGINT: signal.getsignal(signal.SIGINT),
        signal.SIGTERM: signal.getsignal(signal.SIGTERM),
    }
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_term)
    if hasattr(signal, "SIGHUP"):
        previous[signal.SIGHUP] = signal.getsignal(signal.SIGHUP)
        signal.signal(signal.SIGHUP, on_term)
    return previous


def _ignore_signals_during_shutdown() -> None:
    """A second Ctrl-C must not cut the orderly shutdown short (it is bounded anyway)."""
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _stop_previous_services(pid_file: Path) -> None:
    """A launcher killed with SIGKILL leaves its services running; stop them before starting."""
    try:
        previous = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return
    for name, pid in previous.items():
        needle = MODEL_SERVER_MODULE if name == "model" else f"pinworks_{name}"
        stop_stale_process(int(pid), needle, signal.SIGTERM, timeout=STOP_TIMEOUT)


def _record_pids(pid_file: Path, processes: Sequence[ServiceProcess]) -> None:
    pid_file.write_text(json.dumps({p.name: p.pid for p in processes if p.pid is not None}))


def _start_all(processes: Sequence[ServiceProcess], pid_file: Path) -> None:
    """Start every service, then wait for each; raises (with the log tail) on failure."""
    for proc in processes:
        proc.start()
        _say(f"started {proc.name} (pid {proc.pid}), log {proc.log_path}")
    _record_pids(pid_file, processes)
    for proc in processes:
        proc.wait_ready(READY_TIMEOUT)
        _say(f"{proc.name} is ready")


def _supervise_once(entries: Sequence[_Supervised], now: float, clock: Callable[[], float]) -> bool:
    """One pass over the services; True when one was restarted (its pid changed)."""
    restarted = False
    for entry in entries:
        proc = entry.process
        if entry.given_up:
            continue
        if entry.restart_at is not None:
            if now >= entry.restart_at:
                entry.restart_at = None
                proc.start()
                entry.awaiting_ready = True
                restarted = True
                _say(f"restarted {proc.name} (pid {proc.pid})")
            continue
        if entry.awaiting_ready and proc.check_ready():
            entry.awaiting_ready = False
            _say(f"{proc.name} is ready again")
        if proc.is_running:
            continue
        code = proc.returncode
        proc.stop(0)
        entry.recent_failures = [t for t in entry.recent_failures if now - t < RESTART_WINDOW]
        entry.recent_failures.append(now)
        tail = "\n".join(proc.log_text().splitlines()[-15:])
        _say(f"{proc.name} exited unexpectedly (code {code}); last log lines:\n{tail}")
        if len(entry.recent_failures) > MAX_RESTARTS:
            entry.given_up = True
            _say(
                f"{proc.name} failed {len(entry.recent_failures)} times in "
                f"{RESTART_WINDOW:.0f}s; leaving it stopped (see {proc.log_path})"
            )
            continue
        delay = backoff_delay(len(entry.recent_failures))
        entry.restart_at = clock() + delay
        _say(f"restarting {proc.name} in {delay:.0f}s")
    return restarted


def _stop_all(processes: Sequence[ServiceProcess]) -> None:
    """SIGTERM everyone first so they drain in parallel, then wait and kill stragglers."""
    for proc in processes:
        proc.kill(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in processes:
        proc.wait_exit(max(0.0, deadline - time.monotonic()))
        code = proc.stop(0)
        if code is not None:
            _say(f"stopped {proc.name} (exit {code})")


def run_platform(services: Sequence[str] = ALL_SERVICES, workdir: Path = Path(".run")) -> int:
    """Run NATS, Postgres and ``services`` until Ctrl-C or SIGTERM; 0 on a clean stop."""
    unknown = [name for name in services if name not in ALL_SERVICES]
    if unknown:
        _say(f"unknown service(s): {', '.join(unknown)}; choose from {', '.join(ALL_SERVICES)}")
        return 2
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log_dir = workdir / "logs"
    pid_file = workdir / "services.pids"
    previous = _install_signal_handlers()
    infra: Infrastructure | None = None
    processes: list[ServiceProcess] = []
    exit_code = 0
    try:
        _stop_previous_services(pid_file)
        _say("starting NATS and Postgres ...")
        infra = resolve_infrastructure(workdir, allow_docker=False, prefer_default_ports=True)
        _say(infra.description)
        logins = _database_logins(infra, workdir)
        escalation_port = _escalation_port() if "escalation" in services else None
        model = _local_model(log_dir) if "specialists" in services else None
        services_processes = [
            ServiceProcess(name, _service_env(name, infra, escalation_port or 0, model, logins),
                           log_dir)
            for name in services
        ]
        processes = [*([model] if model is not None else []), *services_processes]
        _nats_identity_notice(infra)
        _prepare_nats(infra)
        _start_all(processes, pid_file)
        env_file = _write_env_file(workdir, infra, escalation_port or DEFAULT_ESCALATION_PORT,
                                   services_processes, model, logins)
        print(format_summary(infra, services_processes, escalation_port, env_file, model),
              flush=True)
        entries = [_Supervised(proc) for proc in processes]
        while True:
            if _supervise_once(entries, time.monotonic(), time.monotonic):
                _record_pids(pid_file, processes)
                _write_env_file(workdir, infra, escalation_port or DEFAULT_ESCALATION_PORT,
                                services_processes, model, logins)  # a restart may change a port
            time.sleep(SUPERVISE_INTERVAL)
    except (KeyboardInterrupt, _Shutdown):
        _ignore_signals_during_shutdown()
        _say("shutting down ...")
    except (RuntimeError, OSError) as exc:
        _ignore_signals_during_shutdown()
        _say(f"could not start: {exc}")
        exit_code = 1
    finally:
        _ignore_signals_during_shutdown()
        try:
            _stop_all(processes)
            pid_file.unlink(missing_ok=True)
            if infra is not None:
                infra.close()
                _say("stopped NATS and Postgres")
        finally:
            _restore_signals(previous)
    return exit_code


def main() -> None:
    """``python -m pinworks_cli.launcher [service ...]`` without the typer CLI."""
    services = tuple(sys.argv[1:]) or ALL_SERVICES
    raise SystemExit(run_platform(services))


if __name__ == "__main__":
    main()
