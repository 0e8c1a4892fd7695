"""TLS settings as plain data, turned into real TLS contexts by the I/O layer."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("ClientTLSConfig", "ServerTLSConfig")


@dataclass(frozen=True)
class ClientTLSConfig:
    """How a client verifies servers and presents itself.

    The sans-IO core never builds an ``ssl.SSLContext``: TCP networking
    backends turn this into one, and the HTTP/3 protocol into a QUIC
    configuration.  With no CA given, the system's trust store is used.
    """

    #: Path to a PEM file of trusted CA certificates.
    cafile: str | None = None
    #: Path to a directory of trusted CA certificates (``c_rehash`` form).
    capath: str | None = None
    #: Trusted CA certificates, PEM text.
    cadata: str | None = None
    #: Skip certificate and host name verification (testing only).
    insecure: bool = False
    #: Client certificate chain (PEM file), for servers that ask for one.
    certfile: str | None = None
    #: Private key of :attr:`certfile`; ``None`` when the key is in that file.
    keyfile: str | None = None
    #: Password of the private key, if it is encrypted.
    keypassword: str | bytes | None = None
    #: OpenSSL cipher string for TLS 1.2 and below; ``None`` keeps the default.
    ciphers: str | None = None
    #: Lowest TLS version to accept, as ``"TLSv1.2"`` or ``"TLSv1.3"``.
    minimum_version: str | None = "TLSv1.2"


@dataclass(frozen=True)
class ServerTLSConfig:
    """The certificate a server presents and how it treats client certificates."""

    #: Certificate chain, PEM file, leaf first.
    certfile: str | None = None
    #: Private key of :attr:`certfile`; ``None`` when the key is in that file.
    keyfile: str | None = None
    #: Password of the private key, if it is encrypted.
    keypassword: str | bytes | None = None
    #: CA certificates (PEM file) that client certificates are checked against.
    cafile: str | None = None
    #: Trusted client CA certificates, PEM text.
    cadata: str | None = None
    #: Ask clients for a certificate and refuse those that present none.
    require_client_certificate: bool = False
    #: OpenSSL cipher string for TLS 1.2 and below; ``None`` keeps the default.
    ciphers: str | None = None
    #: Lowest TLS version to accept, as ``"TLSv1.2"`` or ``"TLSv1.3"``.
    minimum_version: str | None = "TLSv1.2"
