"""NATS client options from the nats CLI's variables: one mapping for services, CLI and tests."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from faststream.nats.security import NatsCredentials, NatsUserPassword

from pinworks_common.nats_client import NatsClientSettings, connect_options, warn_if_anonymous
from pinworks_common.settings import CommonSettings


def test_no_variables_is_anonymous_with_the_default_inbox() -> None:
    assert connect_options({}) == {"inbox_prefix": "_INBOX"}
    assert not NatsClientSettings.from_env({}).authenticated


@pytest.mark.parametrize(("env", "key", "security_type"), [
    ({"NATS_CREDS": "/x/u.creds", "NATS_NKEY": "/x/u.nk"}, "user_credentials", NatsCredentials),
    ({"NATS_USER": "dev", "NATS_PASSWORD": "pw"}, "user", NatsUserPassword),
])
def test_creds_win_over_a_seed_and_passwords_are_the_last_resort(
        env: dict[str, str], key: str, security_type: type) -> None:
    options = connect_options(env)
    assert key in options and "nkeys_seed" not in options
    assert isinstance(NatsClientSettings.from_env(env).broker_options()["security"], security_type)


def test_tls_alone_still_verifies_the_server() -> None:
    settings = NatsClientSettings.from_env({"NATS_TLS_CA": "/nonexistent/ca.pem"})
    with pytest.raises(FileNotFoundError):
        settings.connect_options()
    assert NatsClientSettings.from_env({}).broker_options() == {"inbox_prefix": "_INBOX"}


def test_every_service_reads_the_same_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_NKEY", "/run/secrets/classifier.nk")
    monkeypatch.setenv("NATS_INBOX_PREFIX", "_INBOX_classifier")
    settings = CommonSettings()
    assert settings.nats_nkey == Path("/run/secrets/classifier.nk")
    assert settings.connect_options()["inbox_prefix"] == "_INBOX_classifier"


def test_an_anonymous_client_is_warned_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "pinworks.nats"):
        assert warn_if_anonymous(NatsClientSettings.from_env({}), "nats://h:4222", "pinworks-x")
        assert not warn_if_anonymous(NatsClientSettings.from_env({}), "nats://u:p@h:4222", "y")
        assert not warn_if_anonymous(NatsClientSettings.from_env({"NATS_NKEY": "/k"}),
                                     "nats://h:4222", "z")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "WITHOUT CREDENTIALS" in warnings[0].getMessage()


def test_the_nats_cli_names_of_the_tls_files_are_read_too() -> None:
    settings = NatsClientSettings.from_env({"NATS_CA": "/ca.pem", "NATS_CERT": "/c.pem",
                                            "NATS_KEY": "/k.pem"})
    assert (settings.nats_tls_ca, settings.nats_tls_cert, settings.nats_tls_key) == (
        Path("/ca.pem"), Path("/c.pem"), Path("/k.pem"))


def test_a_tls_client_drops_only_asyncios_eof_warning(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(FileNotFoundError):
        NatsClientSettings.from_env({"NATS_TLS_CA": "/nonexistent/ca.pem"}).ssl_context()
    asyncio_log = logging.getLogger("asyncio")
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        asyncio_log.warning("returning true from eof_received() has no effect when using ssl")
        asyncio_log.warning("Unclosed connection")
    assert [record.getMessage() for record in caplog.records] == ["Unclosed connection"]
