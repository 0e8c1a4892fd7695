"""Throwaway certificates for demos and tests: a CA and a leaf it signed.

The key pair and certificates are made in memory with ``cryptography``
(already a dependency through aioquic) and written as PEM files, since both
:mod:`ssl` and aioquic load certificates from files.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hcore import ClientTLSConfig, ServerTLSConfig

__all__ = ("GeneratedCertificate", "generate_certificate")


@dataclass(frozen=True)
class GeneratedCertificate:
    """Where :func:`generate_certificate` wrote its files."""

    #: The server certificate (PEM), signed by :attr:`ca_file`.
    cert_file: Path
    #: The server certificate's private key (PEM, unencrypted).
    key_file: Path
    #: The CA certificate that clients must trust (PEM).
    ca_file: Path

    def server_tls_config(self) -> ServerTLSConfig:
        """A server configuration presenting the certificate."""
        return ServerTLSConfig(certfile=str(self.cert_file), keyfile=str(self.key_file))

    def client_tls_config(self) -> ClientTLSConfig:
        """A client configuration trusting the CA (and nothing else)."""
        return ClientTLSConfig(cafile=str(self.ca_file))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _subject_names(names: Sequence[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def _pem(private_key: ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_certificate(
    directory: Path,
    names: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    *,
    days: int = 1,
) -> GeneratedCertificate:
    """Make a throwaway CA and a server certificate for ``names`` signed by it.

    :param directory: where to write ``cert.pem``, ``key.pem`` and ``ca.pem``.
    :param names: host names and IP addresses the certificate is valid for.
    :param days: how long the certificates stay valid.
    :return: the paths written.
    :raises ValueError: if ``names`` is empty.
    """
    if not names:
        raise ValueError("a certificate needs at least one name")
    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(minutes=5)
    end = now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("hcore throwaway CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(_subject_names(names)), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    generated = GeneratedCertificate(
        cert_file=directory / "cert.pem",
        key_file=directory / "key.pem",
        ca_file=directory / "ca.pem",
    )
    generated.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    generated.key_file.write_bytes(_pem(key))
    generated.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return generated
