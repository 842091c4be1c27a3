"""An embedded PostgreSQL server from the ``pgserver`` package's binaries, on loopback TCP,
with password (SCRAM) authentication: the superuser's password is generated on first start and
kept in ``data_dir/superuser-password`` (mode 0600)."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Self

from pinworks_devtools.processes import (
    LOOPBACK,
    ManagedServer,
    free_port,
    process_matches,
    stop_stale_process,
    tcp_accepts,
    wait_until,
)

POSTGRES_USER = "postgres"
POSTGRES_DB = "pinworks"
PASSWORD_HBA = (
    "# written by pinworks: every connection logs in with a password (SCRAM)\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
    "host all all ::1/128 scram-sha-256\n"
)


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
    return pid if process_matches(pid, "postgres") else None


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
            "PostgreSQL binaries not found; install pinworks-devtools (pgserver)"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres(ManagedServer):
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
        self._bin: Path | None = None
        self._run_as: str | None = None
        self._password: str | None = None

    @property
    def password(self) -> str:
        """The superuser's password, generated once and kept beside the cluster."""
        if self._password is None:
            path = self.data_dir / "superuser-password"
            try:
                self._password = path.read_text().strip() or None
            except OSError:
                self._password = None
            if self._password is None:
                self._password = secrets.token_urlsafe(24)
                self.data_dir.mkdir(parents=True, exist_ok=True)
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(self._password)
        return self._password

    @property
    def url(self) -> str:
        return (f"postgresql://{POSTGRES_USER}:{self.password}@{LOOPBACK}:{self.port}/"
                f"{self.database}")

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
        self._spawn(args, user=self._run_as, cwd=self.data_dir)
        try:
            wait_until(
                self._accepting,
                timeout=timeout,
                what=f"postgres on {LOOPBACK}:{self.port}",
                alive=lambda: self.is_running,
                log=self.log_path,
            )
            self._require_passwords()
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
        return lines[7].strip() == "ready" and tcp_accepts(LOOPBACK, self.port)

    def _psql(self, database: str, sql: str) -> str:
        assert self._bin is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSWORD"] = self.password
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

    def _require_passwords(self) -> None:
        """Give the superuser its password and make every login need one. initdb's trust (and a
        cluster an earlier version left trusting) lasts only until this first reload."""
        hba = self._cluster / "pg_hba.conf"
        if hba.read_text() == PASSWORD_HBA:
            return
        literal = "'" + self.password.replace("'", "''") + "'"
        self._psql("postgres", f"ALTER ROLE {POSTGRES_USER} PASSWORD {literal}")
        hba.write_text(PASSWORD_HBA)
        self._psql("postgres", "SELECT pg_reload_conf()")

    def _ensure_database(self) -> None:
        exists = self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if exists != "1":
            self._psql("postgres", f'CREATE DATABASE "{self.database}"')

    def stop(self, timeout: float = 15.0) -> None:
        """SIGINT is Postgres' "fast" shutdown: it disconnects clients and checkpoints.

        SIGTERM would be the "smart" mode, which waits for every client to leave on its own.
        """
        self._stop_with(signal.SIGINT, timeout)

