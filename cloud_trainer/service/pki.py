"""Certificates for TLS: a private certificate authority for one trainer, and the server's certificate signed by it.

Clinics' apps trust the CA certificate (``ca.pem``), which ``stridetwin trainer init`` creates beside the server's
key and certificate. Keys are ECDSA P-256 (the curve TLS 1.3 implementations all support; small, fast handshakes),
written with mode 0600. The server certificate lists ``localhost``, ``127.0.0.1``, ``::1`` and every hostname or
address given, as subject alternative names (RFC 6125: clients match SANs, not the common name).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    """Where a trainer's TLS material lies."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def in_dir(cls, directory: Path) -> TlsFiles:
        d = Path(directory)
        return cls(d / "ca.pem", d / "ca.key", d / "server.pem", d / "server.key")

    def exist(self) -> bool:
        return all(p.exists() for p in (self.ca_cert, self.server_cert, self.server_key))


#: Validity of the CA (10 years) and of a server certificate (825 days, the CA/Browser Forum's former ceiling).
CA_VALIDITY_DAYS = 3650
SERVER_VALIDITY_DAYS = 825


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def create_tls_files(
    directory: Path, hostnames: list[str] | tuple[str, ...] = (), *, name: str = "StrideTwin"
) -> TlsFiles:
    """Create a CA and a server certificate signed by it in ``directory``; FileExistsError if any file exists."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    files = TlsFiles.in_dir(directory)
    for path in (files.ca_cert, files.ca_key, files.server_cert, files.server_key):
        if path.exists():
            raise FileExistsError(f"{path} already exists; refusing to replace TLS material clients may trust")
    Path(directory).mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"{name} trainer CA")])  # fmt: skip
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    sans: list[x509.GeneralName] = []
    for host in ("localhost", "127.0.0.1", "::1", *hostnames):
        try:
            general: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            general = x509.DNSName(host)
        if general not in sans:
            sans.append(general)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                                 x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames else "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip

    pem = serialization.Encoding.PEM
    key_format = serialization.PrivateFormat.PKCS8
    no_pass = serialization.NoEncryption()
    _write_private(files.ca_key, ca_key.private_bytes(pem, key_format, no_pass))
    _write_private(files.server_key, server_key.private_bytes(pem, key_format, no_pass))
    files.ca_cert.write_bytes(ca_cert.public_bytes(pem))
    files.server_cert.write_bytes(server_cert.public_bytes(pem))
    return files
