"""Generated NATS identities: private files, kept across starts, rotated by deleting a seed."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

from faststream.nats.security import NatsNKey

from pinworks_common.nats_client import NatsClientSettings, connect_options
from pinworks_contracts.identities import DEFAULT_PLATFORM, OPERATOR, SERVICES, permissions
from pinworks_devtools import NatsSecurity


def test_every_identity_gets_a_private_seed_and_the_server_config_names_it(tmp_path: Path) -> None:
    security = NatsSecurity.ensure(tmp_path / "security", platforms=("support", "crm"))
    assert set(security.identities) == {*SERVICES, OPERATOR, "support", "crm"}
    for identity in security.identities.values():
        assert stat.S_IMODE(identity.seed_file.stat().st_mode) == 0o600
        assert identity.seed_file.read_text().startswith("SU")
        assert identity.public_key.startswith("U")
    config = security.config_file.read_text()
    assert config.count('"nkey"') == len(security.identities)
    assert "tls:" in config and str(security.cert_file) in config
    assert not any(rule.startswith("tickets.outcome") for rule in permissions("crm").publish)


def test_a_second_start_keeps_identities_and_a_deleted_seed_is_rotated(tmp_path: Path) -> None:
    first = NatsSecurity.ensure(tmp_path)
    again = NatsSecurity.ensure(tmp_path)
    assert again.identities == first.identities
    assert again.ca_file.read_bytes() == first.ca_file.read_bytes()
    first.identities["router"].seed_file.unlink()
    rotated = NatsSecurity.ensure(tmp_path)
    assert rotated.identities["router"].public_key != first.identities["router"].public_key
    assert rotated.identities["verifier"] == first.identities["verifier"]
    assert first.identities["router"].public_key not in rotated.config_file.read_text()


def test_client_env_makes_a_verified_nkey_client(tmp_path: Path) -> None:
    security = NatsSecurity.ensure(tmp_path)
    env = security.client_env(DEFAULT_PLATFORM)
    options = connect_options(env)
    assert options["nkeys_seed"] == str(security.identities[DEFAULT_PLATFORM].seed_file)
    assert options["inbox_prefix"] == "_INBOX_support"
    context = options["tls"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "pinworks development CA"),),)
    broker = NatsClientSettings.from_env(env).broker_options()
    assert isinstance(broker["security"], NatsNKey) and broker["security"].ssl_context is not None
