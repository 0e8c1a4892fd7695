"""Factories that make HTTP/3 protocols, one per QUIC connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, Unpack

from aioquic.quic.packet import QuicProtocolVersion

from hcore._tls import ClientTLSConfig, ServerTLSConfig
from hcore._types import Address
from hcore.protocols._factories import (
    HTTPOverQUICClientFactory,
    HTTPOverQUICServerFactory,
)
from hcore.protocols.http3._client import AioquicClientProtocol
from hcore.protocols.http3._limits import Limits
from hcore.protocols.http3._retry import RetryTokens
from hcore.protocols.http3._server import AioquicServerProtocol
from hcore.protocols.http3._tls import (
    CertificateCache,
    SessionTicketStore,
    client_configuration,
    server_configuration,
)

__all__ = ("HTTP3ClientFactory", "HTTP3ServerFactory")

_MIB = 1 << 20
# RFC 9000 §14: every QUIC path carries 1200-byte datagrams.
_MIN_DATAGRAM = 1200
# aioquic 1.7 writes STREAM and CRYPTO frame lengths as two-byte integers
# (below 16384), so bigger packets would carry frames it cannot describe.
_MAX_DATAGRAM = 16384


def _limits(
    *,
    idle_timeout: float,
    max_datagram_size: int,
    stream_receive_window: int,
    connection_receive_window: int,
    stream_send_buffer: int,
    connection_id_length: int,
    supported_versions: Sequence[int],
    qpack_max_table_capacity: int,
    qpack_blocked_streams: int,
    max_field_section_size: int,
) -> Limits:
    if not idle_timeout > 0:
        raise ValueError("idle_timeout must be positive")
    if not _MIN_DATAGRAM <= max_datagram_size <= _MAX_DATAGRAM:
        raise ValueError(
            f"max_datagram_size must be between {_MIN_DATAGRAM} and {_MAX_DATAGRAM}"
        )
    # A window must hold a HEADERS frame with room to spare.
    if stream_receive_window < 16 * 1024 or connection_receive_window < 16 * 1024:
        raise ValueError("receive windows must be at least 16 KiB")
    if stream_send_buffer < 16 * 1024:
        raise ValueError("stream_send_buffer must be at least 16 KiB")
    # RFC 9000 §17.2: connection ids are up to 20 bytes; a listener routes by
    # them, and random ids shorter than 8 bytes would start to collide.
    if not 8 <= connection_id_length <= 20:
        raise ValueError("connection_id_length must be between 8 and 20")
    if not supported_versions:
        raise ValueError("supported_versions must not be empty")
    # RFC 9204 §5: QPACK settings are 62-bit; these bound memory, so sanely.
    if not 0 <= qpack_max_table_capacity <= _MIB:
        raise ValueError("qpack_max_table_capacity must be between 0 and 1 MiB")
    if not 0 <= qpack_blocked_streams <= 1000:
        raise ValueError("qpack_blocked_streams must be between 0 and 1000")
    if not 1024 <= max_field_section_size <= 16 * _MIB:
        raise ValueError("max_field_section_size must be between 1 KiB and 16 MiB")
    return Limits(
        idle_timeout=float(idle_timeout),
        max_datagram_size=max_datagram_size,
        stream_receive_window=stream_receive_window,
        connection_receive_window=connection_receive_window,
        stream_send_buffer=stream_send_buffer,
        connection_id_length=connection_id_length,
        supported_versions=tuple(int(v) for v in supported_versions),
        qpack_max_table_capacity=qpack_max_table_capacity,
        qpack_blocked_streams=qpack_blocked_streams,
        max_field_section_size=max_field_section_size,
    )


_DEFAULT_VERSIONS = (QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2)


class _Settings(TypedDict, total=False):
    """The keyword settings both factories take (documented on each)."""

    session_ticket_store: SessionTicketStore | None
    idle_timeout: float
    max_datagram_size: int
    stream_receive_window: int
    connection_receive_window: int
    stream_send_buffer: int
    connection_id_length: int
    supported_versions: Sequence[int]
    qpack_max_table_capacity: int
    qpack_blocked_streams: int
    max_field_section_size: int


class _AioquicFactory:
    """The settings the client and server factories share (documented on each)."""

    def __init__(
        self,
        *,
        session_ticket_store: SessionTicketStore | None = None,
        idle_timeout: float = 60.0,
        max_datagram_size: int = _MIN_DATAGRAM,
        stream_receive_window: int = _MIB,
        connection_receive_window: int = 16 * _MIB,
        stream_send_buffer: int = 4 * _MIB,
        connection_id_length: int = 8,
        supported_versions: Sequence[int] = _DEFAULT_VERSIONS,
        qpack_max_table_capacity: int = 0,
        qpack_blocked_streams: int = 16,
        max_field_section_size: int = 64 * 1024,
    ) -> None:
        self._limits = _limits(
            idle_timeout=idle_timeout,
            max_datagram_size=max_datagram_size,
            stream_receive_window=stream_receive_window,
            connection_receive_window=connection_receive_window,
            stream_send_buffer=stream_send_buffer,
            connection_id_length=connection_id_length,
            supported_versions=supported_versions,
            qpack_max_table_capacity=qpack_max_table_capacity,
            qpack_blocked_streams=qpack_blocked_streams,
            max_field_section_size=max_field_section_size,
        )
        self._tickets = (
            session_ticket_store
            if session_ticket_store is not None
            else SessionTicketStore()
        )
        self._certificates = CertificateCache()

    @property
    def session_ticket_store(self) -> SessionTicketStore:
        """The session tickets kept (client) or issued (server) for resumption."""
        return self._tickets


class HTTP3ClientFactory(_AioquicFactory, HTTPOverQUICClientFactory):
    """Makes HTTP/3 client protocols on aioquic, remembering session tickets.

    Tickets the servers send are kept in :attr:`session_ticket_store` under the
    server name, and the next connection to that name resumes the session
    (and may send its first requests as 0-RTT data).

    :param session_ticket_store: where to keep tickets; a new store if
        ``None``, so share one between factories to share tickets.
    :param idle_timeout: seconds without traffic before the connection ends
        (the smaller of both sides' values applies, RFC 9000 §10.1).
    :param max_datagram_size: largest UDP payload to send, 1200 to 16384.
    :param stream_receive_window: bytes a stream may receive beyond what the
        application has taken; this bounds received data held per stream.
    :param connection_receive_window: initial connection-wide receive window.
    :param stream_send_buffer: most bytes of a stream given to aioquic and not
        yet acknowledged; the rest waits in the protocol.
    :param connection_id_length: length of the connection ids we issue.
    :param supported_versions: QUIC versions, the first one used to connect.
    :param qpack_max_table_capacity: QPACK dynamic table capacity offered to
        the peer's encoder (RFC 9204 §3.2.3); 0, the default, turns the
        dynamic table off, so that a byte of field section decodes to at most
        one short static entry (a QPACK bomb cannot expand).
    :param qpack_blocked_streams: streams that may wait for table updates.
    :param max_field_section_size: largest header or trailer section
        accepted (SETTINGS_MAX_FIELD_SECTION_SIZE); a larger one closes the
        connection with H3_EXCESSIVE_LOAD.
    :raises ValueError: for a limit out of range.
    """

    def __call__(
        self,
        *,
        remote_address: Address,
        server_name: str,
        tls_config: ClientTLSConfig,
    ) -> AioquicClientProtocol:
        """Make a client protocol; its first ``clock()`` starts the handshake.

        A ticket kept for ``server_name`` is used (once) to resume.

        :raises LocalProtocolError: if the client certificate cannot be loaded.
        """
        configuration = client_configuration(
            tls_config,
            server_name=server_name,
            limits=self._limits,
            session_ticket=self._tickets._take(server_name),
            certificates=self._certificates,
        )
        return AioquicClientProtocol(
            configuration=configuration,
            remote_address=remote_address,
            limits=self._limits,
            ticket_store=self._tickets,
        )


class HTTP3ServerFactory(_AioquicFactory, HTTPOverQUICServerFactory):
    """Makes HTTP/3 server protocols on aioquic.

    Issued session tickets are kept in :attr:`session_ticket_store`, each
    accepted once, so clients can resume.  A server that requires client
    certificates issues no tickets: a resumed session would skip the check.

    :param session_ticket_store: where to keep issued tickets; a new store if
        ``None``.
    :param idle_timeout: seconds without traffic before the connection ends.
    :param max_datagram_size: largest UDP payload to send, 1200 to 16384.
    :param stream_receive_window: bytes a stream may receive beyond what the
        application has taken.
    :param connection_receive_window: initial connection-wide receive window.
    :param stream_send_buffer: most bytes of a stream given to aioquic and not
        yet acknowledged.
    :param connection_id_length: length of the connection ids we issue, which
        a listener needs to route short-header packets.
    :param supported_versions: QUIC versions accepted; a listener answers
        others with Version Negotiation.
    :param qpack_max_table_capacity: QPACK dynamic table capacity offered to
        the peer's encoder (RFC 9204 §3.2.3); 0, the default, turns the
        dynamic table off, so that a byte of field section decodes to at most
        one short static entry (a QPACK bomb cannot expand).
    :param qpack_blocked_streams: streams that may wait for table updates.
    :param max_field_section_size: largest header or trailer section
        accepted (SETTINGS_MAX_FIELD_SECTION_SIZE); a larger one closes the
        connection with H3_EXCESSIVE_LOAD.
    :param retry_key: when set, validate client addresses with Retry packets
        (RFC 9000 §8.1.2) whose tokens are signed with this secret (16 bytes
        or more); servers sharing an address share the key.
    :param retry_token_lifetime: seconds a Retry token stays valid.
    :raises ValueError: for a limit out of range.
    """

    def __init__(
        self,
        *,
        retry_key: bytes | None = None,
        retry_token_lifetime: float = 10.0,
        **settings: Unpack[_Settings],
    ) -> None:
        super().__init__(**settings)
        self._retry = (
            RetryTokens(
                retry_key,
                retry_token_lifetime,
                self._limits.connection_id_length,
            )
            if retry_key is not None
            else None
        )

    @property
    def quic_connection_id_length(self) -> int:
        """Length of the connection ids the server issues."""
        return self._limits.connection_id_length

    @property
    def quic_supported_versions(self) -> Sequence[int]:
        """QUIC versions the server accepts."""
        return self._limits.supported_versions

    def __call__(self, *, tls_config: ServerTLSConfig) -> AioquicServerProtocol:
        """Make a server protocol, to be fed the connection's first datagram.

        :raises LocalProtocolError: without a usable certificate.
        """
        configuration = server_configuration(
            tls_config, limits=self._limits, certificates=self._certificates
        )
        return AioquicServerProtocol(
            configuration=configuration,
            tls_config=tls_config,
            limits=self._limits,
            ticket_store=None
            if tls_config.require_client_certificate
            else self._tickets,
            retry=self._retry,
        )
