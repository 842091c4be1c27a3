"""CPU time of the processes a bench's platform runs, read from /proc (through psutil).

A process's reading is its own user + system time and that of its whole tree: live children
(Postgres' backends) and the ones already reaped (counted in the parent's children times), so a
backend that exits between two readings is still counted once. Two readings give CPU-ms per
ticket (`bench_figures.cpu_per_ticket`); a process that restarted in between (its pid changed)
has no figure rather than a wrong one.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from urllib.parse import urlparse

import psutil

from pinworks_cli.bench_figures import CpuReading


def tree_cpu_seconds(pid: int) -> float | None:
    """User + system seconds of `pid` and all its descendants (live and reaped); None if gone."""
    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0.0
    for member in members:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue  # a child that exited meanwhile: its time is in its parent's children times
        total += times.user + times.system + times.children_user + times.children_system
    return total


def read_cpu(pids: dict[str, int]) -> CpuReading:
    """One reading of every named process."""
    seconds = {name: value for name, pid in pids.items()
               if (value := tree_cpu_seconds(pid)) is not None}
    return CpuReading(pids=dict(pids), seconds=seconds)


def listening_pid(url: str) -> int | None:
    """The process listening on `url`'s TCP port on this machine (NATS, Postgres), if any."""
    port = urlparse(url.split(",")[0].strip()).port
    if port is None:
        return None
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for connection in connections:
        if (connection.status == psutil.CONN_LISTEN and connection.laddr
                and connection.laddr.port == port and connection.pid):
            return int(connection.pid)
    return None


def running_platform_pids(nats_url: str, database_url: str | None,
                          run_dir: Path | None) -> dict[str, int]:
    """The processes of the platform `pinworks run` started: the services from its
    `services.pids`, NATS and Postgres by the port they listen on (only those on this machine)."""
    pids: dict[str, int] = {}
    if run_dir is not None and (run_dir / "services.pids").is_file():
        with contextlib.suppress(ValueError, OSError, AttributeError):
            pids.update({str(k): int(v) for k, v in
                         json.loads((run_dir / "services.pids").read_text()).items()})
    for name, url in (("nats-server", nats_url), ("postgres", database_url)):
        if url and (pid := listening_pid(url)) is not None:
            pids[name] = pid
    return pids
