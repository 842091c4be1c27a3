"""`docker compose up` is secured like `make run`: compose.yaml gives every service its own NATS
identity and Postgres role from a volume of its own, and what the one-shot `secrets` container
writes really works: the real nats-server runs its configuration (anonymous clients refused,
each identity doing its job and nothing else) and the migrate container's command gives each
role the login its service's URL names (a Postgres of this test's own). No Docker engine here:
the containers' commands run as processes, with each volume a directory."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
import yaml
from nats.errors import Error as NatsError
from sqlalchemy import text
from sqlalchemy.engine import make_url

from pinworks_common.db.roles import CONSOLE, SERVICE_ROLES
from pinworks_common.nats_client import connect_options
from pinworks_common.settings import CommonSettings
from pinworks_contracts import subjects as S
from pinworks_contracts.identities import (
    DEFAULT_PLATFORM,
    OPERATOR,
    SERVICES,
    inbox_prefix,
    platform_consumer,
)
from pinworks_devtools.embedded_nats import nats_server_binary
from pinworks_devtools.processes import LOOPBACK, free_port, tcp_accepts, wait_until
from tests.integration.test_nats_identities import Errors

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
CONTAINERS: dict[str, Any] = COMPOSE["services"]
SECRETS = "/run/secrets/pinworks"


def mounts(container: str) -> dict[str, str]:
    """Volume -> mount point of one container."""
    return {volume: target.removesuffix(":ro") for volume, _, target in
            (entry.partition(":") for entry in CONTAINERS[container].get("volumes", []))}


def env(container: str) -> dict[str, str]:
    return {k: str(v) for k, v in (CONTAINERS[container].get("environment") or {}).items()}


def test_every_service_has_its_own_identity_and_role_from_its_own_volume() -> None:
    for service in SERVICES:
        variables = env(service)
        assert variables["NATS_NKEY"] == f"{SECRETS}/nkey", service
        assert variables["DATABASE_URL_FILE"] == f"{SECRETS}/database-url", service
        assert variables["NATS_INBOX_PREFIX"] == inbox_prefix(service), service
        assert "DATABASE_URL" not in variables and "NATS_USER" not in variables, service
        assert mounts(service) == {f"{service}-secrets": SECRETS}, service
        assert CONTAINERS[service]["volumes"] == [f"{service}-secrets:{SECRETS}:ro"]
        assert CONTAINERS[service]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"
    assert env("escalation")["ESCALATION_CONSOLE_DATABASE_URL_FILE"] == \
        f"{SECRETS}/console-database-url"
    # each secrets volume reaches the secrets container and one other container, no more
    users: dict[str, list[str]] = {}
    for name in CONTAINERS:
        for volume in mounts(name):
            users.setdefault(volume, []).append(name)
    for volume, names in users.items():
        if volume.endswith("-secrets"):
            assert sorted(names) == sorted({"secrets", names[-1]}), (volume, names)
    assert "pinworks:pinworks" not in (REPO / "compose.yaml").read_text()
    assert "POSTGRES_PASSWORD" not in env("postgres")


def test_nats_starts_with_the_generated_configuration_and_no_anonymous_access() -> None:
    nats_container = CONTAINERS["nats"]
    command = nats_container["command"]
    config = command[command.index("-c") + 1]
    assert Path(config).parent == Path(mounts("nats")["nats-config"])
    assert mounts("secrets")["nats-config"] == "/secrets/nats"
    assert nats_container["depends_on"]["secrets"]["condition"] == "service_completed_successfully"
    assert env("postgres")["POSTGRES_PASSWORD_FILE"].startswith(mounts("postgres")["postgres-secrets"])


@dataclass
class Volumes:
    """The secrets container's volumes as directories (volume -> directory)."""

    root: Path
    dirs: dict[str, Path] = field(default_factory=dict)

    def file(self, container: str, path: str) -> Path:
        """Where `path`, as `container` sees it, lies on this machine."""
        for volume, target in mounts(container).items():
            if path.startswith(target + "/"):
                return self.dirs[volume] / path.removeprefix(target + "/")
        raise AssertionError(f"{container}: {path} is in none of its volumes")


def run_secrets_container(root: Path) -> Volumes:
    """The `secrets` container's command, with /secrets at `root` (as a non-root user it hands
    nothing to --owner)."""
    entrypoint = list(CONTAINERS["secrets"]["entrypoint"])
    assert entrypoint[:3] == ["python", "-m", "pinworks_common.deployment_secrets"]
    volumes = Volumes(root)
    for volume, target in mounts("secrets").items():
        volumes.dirs[volume] = root / target.removeprefix("/secrets/")
    args = [str(root) if arg == "/secrets" else arg for arg in entrypoint[3:]]
    subprocess.run([sys.executable, "-m", entrypoint[2], *args], check=True, timeout=120,
                   capture_output=True)
    return volumes


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> Volumes:
    return run_secrets_container(tmp_path_factory.mktemp("compose-secrets"))


def test_the_secrets_container_writes_every_file_each_container_reads(volumes: Volumes) -> None:
    for name in CONTAINERS:
        command = [*CONTAINERS[name].get("entrypoint", []), *CONTAINERS[name].get("command", [])]
        wanted = [value for key, value in env(name).items()
                  if key.endswith("_FILE") or key == "NATS_NKEY"]
        wanted += [arg for arg in command if arg.startswith("/run/secrets/") or arg.startswith(
            "/etc/pinworks/")]
        for path in wanted:
            assert volumes.file(name, path).is_file(), (name, path)
    for service, role in SERVICE_ROLES.items():
        url = make_url(volumes.file(service, f"{SECRETS}/database-url").read_text())
        assert (url.username, url.host, url.database) == (role, "postgres", "pinworks")
        assert url.password and len(url.password) >= 24
        seed = volumes.file(service, f"{SECRETS}/nkey")
        assert seed.read_bytes().startswith(b"SU")
        assert stat.S_IMODE(seed.stat().st_mode) == 0o600
        assert stat.S_IMODE(seed.parent.stat().st_mode) == 0o700
    console = make_url(volumes.file("escalation", f"{SECRETS}/console-database-url").read_text())
    assert console.username == CONSOLE
    passwords = {make_url(volumes.file(s, f"{SECRETS}/database-url").read_text()).password
                 for s in SERVICES}
    assert len(passwords) == len(SERVICES), "two roles share a password"


def test_a_second_start_keeps_identities_and_passwords(volumes: Volumes) -> None:
    files = [*(volumes.file(s, f"{SECRETS}/{name}") for s in SERVICES
               for name in ("nkey", "database-url")),
             volumes.file("migrate", f"{SECRETS}/database-url"),
             volumes.file("migrate", f"{SECRETS}/passwords.json"),
             volumes.file("postgres", env("postgres")["POSTGRES_PASSWORD_FILE"]),
             volumes.dirs["client-secrets"] / f"{OPERATOR}.nk"]
    before = {path: path.read_bytes() for path in files}
    again = run_secrets_container(volumes.root)
    assert {path: path.read_bytes() for path in files} == before
    assert again.dirs == volumes.dirs


def test_a_service_reads_its_database_url_from_the_file(volumes: Volumes,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = volumes.file("router", f"{SECRETS}/database-url")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL_FILE", str(path))
    assert CommonSettings().database_url == path.read_text()
    monkeypatch.setenv("DATABASE_URL", "postgresql://other@127.0.0.1/x")
    with pytest.raises(ValueError, match="DATABASE_URL or DATABASE_URL_FILE, not both"):
        CommonSettings()


# ------------------------------------------------------------------ the real nats-server


@dataclass
class Nats:
    url: str
    volumes: Volumes

    def client_env(self, container: str) -> dict[str, str]:
        """The NATS_* variables `container` has, with its files where they lie here."""
        variables = env(container)
        return {"NATS_NKEY": str(self.volumes.file(container, variables["NATS_NKEY"])),
                "NATS_INBOX_PREFIX": variables["NATS_INBOX_PREFIX"]}


@pytest.fixture(scope="module")
def server(volumes: Volumes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nats]:
    """nats-server as the nats container runs it (its -c file), on loopback ports of its own."""
    command = list(CONTAINERS["nats"]["command"])
    config = volumes.file("nats", command[command.index("-c") + 1])
    port, store = free_port(), tmp_path_factory.mktemp("compose-nats")
    process = subprocess.Popen(
        [str(nats_server_binary()), "-c", str(config), "-js", "-sd", str(store), "-a", LOOPBACK,
         "-p", str(port)], stdout=subprocess.DEVNULL, stderr=(store / "log").open("w"))
    try:
        wait_until(lambda: tcp_accepts(LOOPBACK, port), timeout=30, what="nats-server",
                   alive=lambda: process.poll() is None, log=store / "log")
        yield Nats(f"nats://{LOOPBACK}:{port}", volumes)
    finally:
        process.terminate()
        process.wait(timeout=15)


async def connect(server: Nats, variables: dict[str, str], refusals: Errors | None = None
                  ) -> Any:
    extra = {"error_cb": refusals.add} if refusals is not None else {}
    return await nats.connect(server.url, max_reconnect_attempts=0, connect_timeout=5,
                              **extra, **connect_options(variables))


@pytest_asyncio.fixture(scope="module")
async def prepared(server: Nats) -> AsyncIterator[Nats]:
    """The nats-setup container's command, as the operator: streams and the platform's
    consumer."""
    setup = CONTAINERS["nats-setup"]
    variables = env("nats-setup")
    assert variables["NATS_NKEY"].endswith(f"/{OPERATOR}.nk")
    process_env = {**os.environ, "NATS_URL": server.url,
                   "NATS_NKEY": str(server.volumes.file("nats-setup", variables["NATS_NKEY"])),
                   "NATS_INBOX_PREFIX": variables["NATS_INBOX_PREFIX"]}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, *setup["entrypoint"][1:]], env=process_env,
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    yield server


async def test_an_anonymous_client_is_refused(server: Nats) -> None:
    with pytest.raises(NatsError, match="(?i)authorization violation"):
        await nats.connect(server.url, allow_reconnect=False, connect_timeout=5)


# What each service does at start and in its work: declare the streams, bind its consumer,
# publish its output; with another's consumer or output it is refused.
JOBS: dict[str, tuple[str, str, str]] = {
    "classifier": (S.TICKETS_STREAM, S.Stage.CLASSIFIER, S.CLASSIFIED),
    "router": (S.WORK_STREAM, S.Stage.ROUTER, S.routed_subject("kb")),
    "specialists": (S.WORK_STREAM, S.specialist_consumer("kb"), S.DRAFTED),
    "verifier": (S.WORK_STREAM, S.Stage.VERIFIER,
                 S.outcome_subject(S.OutcomeStatus.RESOLVED, DEFAULT_PLATFORM)),
    "escalation": (S.WORK_STREAM, S.Stage.ESCALATION,
                   S.outcome_subject(S.OutcomeStatus.ESCALATED, DEFAULT_PLATFORM)),
}


@pytest.mark.parametrize("service", SERVICES)
async def test_each_service_identity_does_its_job_and_nothing_else(prepared: Nats,
                                                                   service: str) -> None:
    from nats.js.api import AckPolicy, ConsumerConfig

    from pinworks_common.streams import declare_streams

    stream, durable, output = JOBS[service]
    refusals = Errors()
    nc = await connect(prepared, prepared.client_env(service), refusals)
    try:
        js = nc.jetstream()
        await declare_streams(js)
        await js.add_consumer(stream, ConsumerConfig(durable_name=durable,
                                                     ack_policy=AckPolicy.EXPLICIT))
        ack = await js.publish(output, json.dumps({"ticket_id": f"C-{uuid.uuid4().hex[:8]}"}
                                                  ).encode())
        assert ack.seq > 0
        assert refusals.seen == []
        forged = S.SUBMITTED_PREFIX + "." + DEFAULT_PLATFORM  # only the platform submits
        await nc.publish(forged, b"{}")
        await nc.flush()
        await refusals.wait_for(f'permissions violation for publish to "{forged}"')
    finally:
        await nc.close()


async def test_the_platform_submits_and_reads_its_own_consumer_only(prepared: Nats,
                                                                     tmp_path: Path) -> None:
    client_env = prepared.volumes.dirs["client-secrets"] / "env"
    assert f"NATS_NKEY=\"$PWD/.compose/{DEFAULT_PLATFORM}.nk\"" in client_env.read_text()
    seed = prepared.volumes.dirs["client-secrets"] / f"{DEFAULT_PLATFORM}.nk"
    refusals = Errors()
    nc = await connect(prepared, {"NATS_NKEY": str(seed),
                                  "NATS_INBOX_PREFIX": inbox_prefix(DEFAULT_PLATFORM)}, refusals)
    try:
        js = nc.jetstream()
        ack = await js.publish(S.submission_subject(DEFAULT_PLATFORM), b'{"ticket_id": "C-1"}',
                               stream=S.TICKETS_STREAM)
        assert ack.stream == S.TICKETS_STREAM
        info = await js.consumer_info(S.OUTCOMES_STREAM, platform_consumer(DEFAULT_PLATFORM))
        assert info.config.filter_subject == S.platform_outcome_subjects(DEFAULT_PLATFORM)
        forged = S.outcome_subject(S.OutcomeStatus.RESOLVED, DEFAULT_PLATFORM)
        await nc.publish(forged, b'{"forged": true}')
        await nc.flush()
        await refusals.wait_for(f'permissions violation for publish to "{forged}"')
    finally:
        await nc.close()


# ------------------------------------------------------------------ the real Postgres


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Postgres cluster of this module's own: the migrate command gives roles logins, and
    roles are cluster-wide, so the session's shared server must not be touched."""
    from pinworks_devtools.embedded_postgres import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path_factory.mktemp("compose-postgres")).start()
    try:
        yield server.url
    finally:
        server.stop()


def here(url: str, postgres: str) -> str:
    """A compose URL (host `postgres`) pointed at this test's server."""
    ours = make_url(postgres)
    return make_url(url).set(host=ours.host, port=ours.port,
                             database=ours.database).render_as_string(hide_password=False)


async def test_the_migrate_command_gives_each_service_its_own_role(volumes: Volumes,
                                                                    postgres: str,
                                                                    tmp_path: Path) -> None:
    from pinworks_common.db.engine import create_engine

    migrate = CONTAINERS["migrate"]
    admin = tmp_path / "admin-url"  # the superuser: the postgres container's generated one
    admin.write_text(postgres)
    passwords = volumes.file("migrate", migrate["entrypoint"][-1])
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", migrate["entrypoint"][2], "--passwords",
                         str(passwords)],
        env={**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
             "DATABASE_URL_FILE": str(admin)},
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    for container, name, role in [*((s, "database-url", SERVICE_ROLES[s]) for s in SERVICES),
                                  ("escalation", "console-database-url", CONSOLE)]:
        url = here(volumes.file(container, f"{SECRETS}/{name}").read_text(), postgres)
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT current_user"))).scalar_one() == role
                with pytest.raises(Exception, match="(?i)permission denied|must be owner"):
                    await conn.execute(text("TRUNCATE decisions"))
        finally:
            await engine.dispose()
