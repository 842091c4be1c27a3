"""Identities and TLS for an embedded nats-server (`make run`, the test session, `pinworks chaos`).

On first start, `NatsSecurity.ensure(directory)` generates one nkey per identity of
`pinworks_contracts.identities` (seed files mode 0600), a development CA and a server certificate
for 127.0.0.1/localhost (the `cryptography` package), and writes the server configuration: TLS,
and every identity as an nkey user with its permissions. Later starts reuse the keys and
certificates (delete a seed file to rotate that identity: the next start makes a new one) and
rewrite the configuration, so a changed permission matrix takes effect on restart.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pinworks_common.deployment_secrets import new_user_seed, public_key, write_private
from pinworks_contracts.identities import (
    DEFAULT_PLATFORM,
    OPERATOR,
    SERVICES,
    authorization,
    inbox_prefix,
)

CA_DAYS = 3650
SERVER_CERT_DAYS = 825


@dataclass(frozen=True)
class Identity:
    name: str
    seed_file: Path
    public_key: str


def _ensure_tls(directory: Path) -> tuple[Path, Path, Path]:
    """The development CA and the server certificate (127.0.0.1, ::1, localhost), made once."""
    ca_path, cert_path, key_path = (directory / "ca.pem", directory / "server-cert.pem",
                                    directory / "server-key.pem")
    if ca_path.is_file() and cert_path.is_file() and key_path.is_file():
        return ca_path, cert_path, key_path
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pinworks development CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
             x509.IPAddress(ipaddress.ip_address("::1"))]
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
              .issuer_name(ca_name).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=SERVER_CERT_DAYS))
              .add_extension(x509.SubjectAlternativeName(names), critical=False)
              # client auth too: the certificate can also authenticate a cluster route
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                    ExtendedKeyUsageOID.CLIENT_AUTH]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    write_private(key_path, server_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cert_path.write_bytes(server.public_bytes(pem))
    ca_path.write_bytes(ca.public_bytes(pem))
    return ca_path, cert_path, key_path


@dataclass(frozen=True)
class NatsSecurity:
    """The generated identities, certificates and server configuration under one directory."""

    directory: Path
    identities: dict[str, Identity]
    ca_file: Path
    cert_file: Path
    key_file: Path
    config_file: Path

    @classmethod
    def ensure(cls, directory: Path, platforms: Iterable[str] = (DEFAULT_PLATFORM,)
               ) -> NatsSecurity:
        directory = Path(directory).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        identities = {}
        for name in (*SERVICES, OPERATOR, *platforms):
            seed_file = directory / f"{name}.nk"
            if not seed_file.is_file():
                write_private(seed_file, new_user_seed() + b"\n")
            identities[name] = Identity(name, seed_file, public_key(seed_file.read_bytes().strip()))
        ca, cert, key = _ensure_tls(directory)
        security = cls(directory, identities, ca, cert, key, directory / "server.conf")
        write_private(security.config_file, security.server_config().encode())
        return security

    def server_config(self) -> str:
        """nats-server configuration: TLS required, every identity an nkey user with its
        permissions, no anonymous access (values in JSON syntax, which the format accepts)."""
        users = authorization({name: identity.public_key
                               for name, identity in self.identities.items()})
        tls = {"cert_file": str(self.cert_file), "key_file": str(self.key_file), "timeout": 5}
        return (f"# generated by pinworks (pinworks_devtools.nats_security); rewritten on start\n"
                f"tls: {json.dumps(tls)}\n"
                f"authorization: {json.dumps(users, indent=2)}\n")

    def client_env(self, identity: str) -> dict[str, str]:
        """The variables that make a client `identity` (seed, CA, inbox prefix); the CA under
        pinworks' name and the nats CLI's (`NATS_CA`)."""
        return {"NATS_NKEY": str(self.identities[identity].seed_file),
                "NATS_TLS_CA": str(self.ca_file), "NATS_CA": str(self.ca_file),
                "NATS_INBOX_PREFIX": inbox_prefix(identity)}
