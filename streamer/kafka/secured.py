"""A SASL_SSL listener for the embedded Apache Kafka: what production Kafka speaks.

:func:`prepare` writes, into the broker's data directory, a throwaway CA, a broker
certificate for loopback signed by it (``cryptography``, which MLflow already depends on),
and a SCRAM-SHA-512 user with a random password. The broker gets a ``SASL_SSL`` listener
beside its internal ``PLAINTEXT`` one (used between its own broker and controller roles and
for its start-up probe); the user is created when the storage is formatted
(``StorageTool format --add-scram``), as Kafka documents for KRaft.

Clients reach it with :meth:`SaslSsl.client`: the Java client's names, the one dialect
``kafka.client`` takes (:mod:`streamer.kafka.dialect`), with the CA as a PEM truststore.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from streamer.kafka.dialect.jaas import SCRAM_MODULE

MECHANISM = "SCRAM-SHA-512"
LISTENER = "SASL_SSL"
_STATE = "sasl_ssl.json"


@dataclass(frozen=True)
class SaslSsl:
    """How to reach the SASL_SSL listener: its address, the CA to trust, one SCRAM user."""

    bootstrap_servers: str
    ca_path: Path
    username: str
    password: str

    def client(self, *, password: str | None = None, ca_path: Path | None = None) -> dict[str, str]:
        """``kafka.client`` settings (Java names) for this listener; ``password`` and
        ``ca_path`` override the right ones, for tests of the wrong ones."""
        secret = self.password if password is None else password
        return {
            "security.protocol": LISTENER,
            "sasl.mechanism": MECHANISM,
            "sasl.jaas.config": (
                f'{SCRAM_MODULE} required username="{self.username}" password="{secret}";'
            ),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(ca_path or self.ca_path),
        }

    def write_client_properties(self, path: Path) -> Path:
        """The same settings as a Java ``client.properties`` file (mode 0600)."""
        path.write_text("".join(f"{k}={v}\n" for k, v in self.client().items()))
        path.chmod(0o600)
        return path


def prepare(data_dir: Path, port: int) -> tuple[SaslSsl, dict[str, str], list[str]]:
    """Certificates and a user for a new node in ``data_dir``: the client's view, the
    broker properties to add, and the arguments that create the user at format time."""
    tls = data_dir / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    ca_path, keystore = write_certificates(tls)
    access = SaslSsl(
        bootstrap_servers=f"127.0.0.1:{port}",
        ca_path=ca_path,
        username="streamer",
        password=secrets.token_urlsafe(18),
    )
    state = data_dir / _STATE
    state.write_text(json.dumps({**access.__dict__, "ca_path": str(ca_path)}))
    state.chmod(0o600)
    scram = f"{MECHANISM}=[name={access.username},password={access.password}]"
    return access, broker_properties(keystore, ca_path), ["--add-scram", scram]


def restore(data_dir: Path) -> SaslSsl | None:
    """The listener a formatted ``data_dir`` was given, if any."""
    state = data_dir / _STATE
    if not state.exists():
        return None
    stored = json.loads(state.read_text())
    return SaslSsl(**{**stored, "ca_path": Path(stored["ca_path"])})


def broker_properties(keystore: Path, ca_path: Path) -> dict[str, str]:
    prefix = f"listener.name.{LISTENER.lower()}"
    return {
        "sasl.enabled.mechanisms": MECHANISM,
        f"{prefix}.{MECHANISM.lower()}.sasl.jaas.config": f"{SCRAM_MODULE} required;",
        f"{prefix}.ssl.keystore.type": "PEM",
        f"{prefix}.ssl.keystore.location": str(keystore),
        f"{prefix}.ssl.truststore.type": "PEM",
        f"{prefix}.ssl.truststore.location": str(ca_path),
    }


def write_certificates(folder: Path) -> tuple[Path, Path]:
    """A CA (``ca.pem``) and, signed by it, a certificate for 127.0.0.1 and localhost whose
    PEM keystore (``broker.pem``: unencrypted PKCS#8 key, then the chain) Kafka reads."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streamer test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path, keystore = folder / "ca.pem", folder / "broker.pem"
    ca_path.write_bytes(ca.public_bytes(pem))
    keystore.write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + cert.public_bytes(pem)
        + ca.public_bytes(pem)
    )
    os.chmod(keystore, 0o600)
    return ca_path, keystore
