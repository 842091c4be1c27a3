"""Where every test finds NATS and Postgres: the one place, resolved once per session.

Order (see ``pinworks_devtools.resolve_infrastructure``): ``NATS_URL`` / ``DATABASE_URL``
from the environment, else Docker containers when an engine answers (set
``PINWORKS_ALLOW_DOCKER=0`` to skip that), else the embedded servers from the ``embedded`` extra.
Each server starts only when a test asks for it, so a test that needs only NATS never starts
Postgres.

The embedded nats-server requires TLS and an nkey identity per client, like `make run`: the test
session itself (its clients, the in-process CLI) acts as the operator identity (its NATS_*
variables are set for the whole session), and each service started by a test gets its own
identity (`nats_endpoint.client_env(service)`). With ``NATS_URL`` the NATS_* variables of the
environment apply to everyone.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pinworks_contracts.identities import OPERATOR
from pinworks_devtools import (
    Endpoint,
    Infrastructure,
    docker_available,
    drop_database,
    fresh_database,
    resolve_database,
    resolve_nats,
)


def _allow_docker() -> bool:
    return os.environ.get("PINWORKS_ALLOW_DOCKER", "1").lower() not in ("0", "false", "no")


@pytest.fixture(scope="session")
def _docker_ok() -> bool:
    return _allow_docker() and docker_available()


@pytest.fixture(scope="session")
def nats_endpoint(tmp_path_factory: pytest.TempPathFactory, _docker_ok: bool) -> Iterator[Endpoint]:
    endpoint = resolve_nats(tmp_path_factory.mktemp("infra"), allow_docker=_docker_ok, docker_ok=_docker_ok)
    with pytest.MonkeyPatch.context() as session_env:
        for name, value in endpoint.client_env(OPERATOR).items():
            session_env.setenv(name, value)
        yield endpoint
    endpoint.close()


@pytest.fixture(scope="session")
def database_endpoint(tmp_path_factory: pytest.TempPathFactory, _docker_ok: bool) -> Iterator[Endpoint]:
    endpoint = resolve_database(
        tmp_path_factory.mktemp("infra"), allow_docker=_docker_ok, docker_ok=_docker_ok
    )
    yield endpoint
    endpoint.close()


@pytest.fixture(scope="session")
def infrastructure(nats_endpoint: Endpoint, database_endpoint: Endpoint) -> Infrastructure:
    """Both servers; the endpoint fixtures own their shutdown at the end of the session."""
    return Infrastructure(nats_endpoint, database_endpoint)


@pytest.fixture(scope="session")
def nats_url(nats_endpoint: Endpoint) -> str:
    return nats_endpoint.url


@pytest.fixture(scope="session")
def nats_monitor_url(nats_endpoint: Endpoint) -> str | None:
    """The NATS monitoring endpoint, when we started the server (None for ``NATS_URL``)."""
    return nats_endpoint.monitor_url


@pytest.fixture(scope="session")
def database_url(database_endpoint: Endpoint) -> str:
    return database_endpoint.url


@dataclass(frozen=True)
class Database:
    """The session's database at Alembic head: the superuser's URL (tests' own setup and
    checks) and each role's (what a service, the console or the CLI connects as)."""

    admin_url: str
    role_urls: dict[str, str]

    def service_url(self, service: str) -> str:
        from pinworks_common.db.roles import SERVICE_ROLES

        return self.role_urls[SERVICE_ROLES[service]]


@pytest.fixture(scope="session")
def _made_databases(database_endpoint: Endpoint) -> Iterator[list[str]]:
    """The databases this session made on the endpoint's server (`_provisioned`'s fresh ones),
    dropped when the session ends, and only those: a server named by ``DATABASE_URL`` is
    someone else's and would otherwise collect one per session (an embedded one goes anyway).
    Best effort: one that cannot be dropped is named in a warning, never a failed session."""
    made: list[str] = []
    yield made
    for url in made:
        try:
            asyncio.run(drop_database(database_endpoint.url, url))
        except Exception as error:  # noqa: BLE001 - the tests' outcome stands
            warnings.warn(f"test database {url.rsplit('/', 1)[-1]} not dropped: {error!r}",
                          stacklevel=1)


def _provisioned(database_endpoint: Endpoint, made: list[str], fresh: bool) -> Database:
    """The endpoint's database (or, `fresh`, a new one on its server, in `made`) migrated, every
    role with a login; the roles are the server's, with passwords every session derives alike
    from its URL."""
    from pinworks_common.db.migrate import provision
    from pinworks_common.db.roles import derived_passwords

    url = database_endpoint.url
    if fresh:
        url = asyncio.run(fresh_database(database_endpoint.url))
        made.append(url)
    return Database(url, provision(url, derived_passwords(database_endpoint.url)))


@pytest.fixture(scope="session")
def database(database_endpoint: Endpoint, _made_databases: list[str]) -> Database:
    """Migrated once per session, every role with a login. With ``DATABASE_URL`` (someone
    else's server) the session works in a fresh database of its own there."""
    return _provisioned(database_endpoint, _made_databases,
                        fresh=database_endpoint.source.startswith("environment"))


@pytest.fixture(scope="module")
def own_database(database_endpoint: Endpoint, _made_databases: list[str]) -> Database:
    """A migrated database of this module alone, for a test that must be the only one of its
    kind at work in it (e.g. the only outbox relay: the session's database also serves the
    services the e2e tests start, and a relay of theirs takes rows meant for the test's)."""
    return _provisioned(database_endpoint, _made_databases, fresh=True)


@pytest.fixture(scope="session")
def migrated_database_url(database: Database) -> str:
    """The superuser's URL of the session's migrated database (for a test's own setup)."""
    return database.admin_url
