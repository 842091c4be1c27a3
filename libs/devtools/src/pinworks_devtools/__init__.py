"""Developer tooling no service image installs: embedded NATS and Postgres, services as
subprocesses, the scripted chat server (`chat_server`) and the AsyncAPI generator (`asyncapi`).

The dev servers' API is importable from the package itself; the modules split it by job:
`processes` (ports, readiness polls, stopping processes), `embedded_nats`,
`embedded_postgres`, `infrastructure` (environment, then Docker, then embedded) and
`service_process`.
"""

from pinworks_devtools.embedded_nats import EmbeddedNats, nats_server_binary
from pinworks_devtools.embedded_postgres import EmbeddedPostgres
from pinworks_devtools.infrastructure import (
    Endpoint,
    Infrastructure,
    docker_available,
    drop_database,
    fresh_database,
    resolve_database,
    resolve_infrastructure,
    resolve_nats,
)
from pinworks_devtools.nats_security import NatsSecurity
from pinworks_devtools.processes import LOOPBACK, free_port, port_is_free, stop_stale_process
from pinworks_devtools.service_process import ServiceProcess

__all__ = [
    "LOOPBACK",
    "EmbeddedNats",
    "EmbeddedPostgres",
    "Endpoint",
    "Infrastructure",
    "NatsSecurity",
    "ServiceProcess",
    "docker_available",
    "drop_database",
    "free_port",
    "fresh_database",
    "nats_server_binary",
    "port_is_free",
    "resolve_database",
    "resolve_infrastructure",
    "resolve_nats",
    "stop_stale_process",
]
