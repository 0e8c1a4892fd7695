"""QUIC configurations built from hcore's TLS settings, and session tickets.

QUIC always runs TLS 1.3 (RFC 9001), so ``ciphers`` and ``minimum_version``
of the TLS configs do not apply.  The certificate files are read here, once
per factory and file, with the key before or after the certificates
(aioquic's own loader only takes it after), and the result is put into the
configuration's certificate fields.
"""

from __future__ import annotations

import re
import ssl
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.tls import (
    Alert,
    AlertDescription,
    SessionTicket,
    load_pem_private_key,
    load_pem_x509_certificates,
    verify_certificate,
)
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from hcore._errors import LocalProtocolError
from hcore._tls import ClientTLSConfig, ServerTLSConfig
from hcore.protocols.http3._limits import Limits

__all__ = (
    "CertificateCache",
    "SessionTicketStore",
    "check_client_certificate",
    "client_configuration",
    "server_configuration",
)

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL
)


class SessionTicketStore:
    """TLS session tickets kept so that later connections can resume.

    A client factory files the tickets servers send under the server name
    and uses each once (RFC 8446 §C.4); a server factory files the tickets it
    issues under their own bytes and accepts each once, which also keeps a
    0-RTT request from being replayed into a second connection.  The store
    keeps at most ``max_tickets``, forgetting the oldest first.  Tickets are
    opaque: only the protocols read them.

    :param max_tickets: how many tickets to keep.
    :raises ValueError: if ``max_tickets`` is less than 1.
    """

    def __init__(self, max_tickets: int = 1024) -> None:
        if max_tickets < 1:
            raise ValueError("max_tickets must be at least 1")
        self._max_tickets = max_tickets
        self._tickets: OrderedDict[str | bytes, SessionTicket] = OrderedDict()

    def __len__(self) -> int:
        """How many tickets are kept."""
        return len(self._tickets)

    def __contains__(self, key: object) -> bool:
        """Whether a ticket is kept for a server name (client side)."""
        return key in self._tickets

    def clear(self) -> None:
        """Forget every ticket."""
        self._tickets.clear()

    def _add(self, key: str | bytes, ticket: SessionTicket) -> None:
        self._tickets.pop(key, None)
        self._tickets[key] = ticket
        while len(self._tickets) > self._max_tickets:
            self._tickets.popitem(last=False)

    def _take(self, key: str | bytes) -> SessionTicket | None:
        return self._tickets.pop(key, None)


def _default_verify_locations() -> tuple[str | None, str | None]:
    # "No CA given" means the system's trust store (ClientTLSConfig); aioquic
    # would fall back on certifi's bundle, so point it at OpenSSL's locations
    # (which honour SSL_CERT_FILE and SSL_CERT_DIR).  Without any, aioquic's
    # certifi fallback remains.
    paths = ssl.get_default_verify_paths()
    return paths.cafile, paths.capath


@dataclass(frozen=True)
class _Chain:
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    private_key: PrivateKeyTypes


def _pem_blocks(path: str) -> list[bytes]:
    with open(path, "rb") as file:
        return [match.group(0) for match in _PEM_BLOCK.finditer(file.read())]


def _load_chain(
    certfile: str, keyfile: str | None, password: str | bytes | None
) -> _Chain:
    try:
        blocks = _pem_blocks(certfile)
        certificates = [
            cert
            for block in blocks
            if block.startswith(b"-----BEGIN CERTIFICATE-----")
            for cert in load_pem_x509_certificates(block)
        ]
        if keyfile is not None:
            blocks = _pem_blocks(keyfile)
        keys = [block for block in blocks if b"PRIVATE KEY-----" in block[:40]]
        if not certificates or not keys:
            raise ValueError("no certificate or no private key found")
        secret = password.encode() if isinstance(password, str) else password
        private_key = load_pem_private_key(keys[0], secret)
    except (OSError, ValueError, TypeError) as exc:
        raise LocalProtocolError(
            f"cannot load certificate {certfile!r} (key {keyfile!r}): {exc}"
        ) from exc
    return _Chain(certificates[0], tuple(certificates[1:]), private_key)


class CertificateCache:
    """Certificates and keys read from files, kept so each is read once.

    A factory makes a protocol per connection; reading and parsing the PEM
    files each time would cost every handshake.  A changed file is picked up
    by a new factory.
    """

    def __init__(self, max_entries: int = 8) -> None:
        self._max_entries = max_entries
        self._chains: OrderedDict[tuple[str, str | None, str | bytes | None], _Chain]
        self._chains = OrderedDict()

    def apply(
        self,
        configuration: QuicConfiguration,
        certfile: str,
        keyfile: str | None,
        password: str | bytes | None,
    ) -> None:
        """Put a certificate chain and its key into a configuration.

        :raises LocalProtocolError: if the files cannot be read or parsed.
        """
        key = (certfile, keyfile, password)
        loaded = self._chains.get(key)
        if loaded is None:
            loaded = _load_chain(certfile, keyfile, password)
            self._chains[key] = loaded
            while len(self._chains) > self._max_entries:
                self._chains.popitem(last=False)
        configuration.certificate = loaded.certificate
        configuration.certificate_chain = list(loaded.chain)
        configuration.private_key = loaded.private_key


def _base_configuration(*, is_client: bool, limits: Limits) -> QuicConfiguration:
    return QuicConfiguration(
        is_client=is_client,
        alpn_protocols=list(H3_ALPN),
        idle_timeout=limits.idle_timeout,
        max_datagram_size=limits.max_datagram_size,
        max_stream_data=limits.stream_receive_window,
        max_data=limits.connection_receive_window,
        connection_id_length=limits.connection_id_length,
        supported_versions=list(limits.supported_versions),
    )


def client_configuration(
    tls_config: ClientTLSConfig,
    *,
    server_name: str,
    limits: Limits,
    session_ticket: SessionTicket | None,
    certificates: CertificateCache,
) -> QuicConfiguration:
    """Build a client's QUIC configuration.

    :raises LocalProtocolError: if the client certificate cannot be loaded.
    """
    configuration = _base_configuration(is_client=True, limits=limits)
    configuration.server_name = server_name
    configuration.session_ticket = session_ticket
    if tls_config.insecure:
        configuration.verify_mode = ssl.CERT_NONE
    else:
        configuration.verify_mode = ssl.CERT_REQUIRED
        cafile, capath, cadata = tls_config.cafile, tls_config.capath, tls_config.cadata
        if cafile is None and capath is None and cadata is None:
            cafile, capath = _default_verify_locations()
        configuration.load_verify_locations(
            cafile=cafile,
            capath=capath,
            cadata=cadata.encode() if cadata is not None else None,
        )
    if tls_config.certfile is not None:
        certificates.apply(
            configuration,
            tls_config.certfile,
            tls_config.keyfile,
            tls_config.keypassword,
        )
    return configuration


def server_configuration(
    tls_config: ServerTLSConfig, *, limits: Limits, certificates: CertificateCache
) -> QuicConfiguration:
    """Build a server's QUIC configuration.

    :raises LocalProtocolError: without a certificate, or if it cannot be
        loaded.
    """
    if tls_config.certfile is None:
        raise LocalProtocolError("an HTTP/3 server needs a certificate (certfile)")
    configuration = _base_configuration(is_client=False, limits=limits)
    certificates.apply(
        configuration, tls_config.certfile, tls_config.keyfile, tls_config.keypassword
    )
    return configuration


def check_client_certificate(
    tls_config: ServerTLSConfig,
    certificate: x509.Certificate | None,
    chain: Sequence[x509.Certificate],
) -> tuple[int, str] | None:
    """Check the certificate a client presented against the configured CAs.

    :return: ``None`` if it is good, else the TLS alert (RFC 8446 §6.2) to
        close the connection with, and why.
    """
    if certificate is None:
        return AlertDescription.certificate_required, "no client certificate"
    cafile, cadata = tls_config.cafile, tls_config.cadata
    capath = None
    if cafile is None and cadata is None:
        cafile, capath = _default_verify_locations()
    try:
        verify_certificate(
            certificate=certificate,
            chain=list(chain),
            cafile=cafile,
            capath=capath,
            cadata=cadata.encode() if cadata is not None else None,
        )
    except Alert as exc:
        return exc.description, f"client certificate refused: {exc}"
    return None
