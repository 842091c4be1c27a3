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

import os
from collections.abc import Iterator

import pytest

from pinworks_contracts.identities import OPERATOR
from pinworks_devtools import (
    Endpoint,
    Infrastructure,
    docker_available,
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


@pytest.fixture(scope="session")
def migrated_database_url(database_url: str) -> str:
    """``database_url`` with the schema at Alembic head, migrated once per session."""
    from pinworks_common.db.migrate import upgrade

    upgrade(database_url)
    return database_url
