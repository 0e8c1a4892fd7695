"""The server side of HTTP/3 over aioquic."""

from __future__ import annotations

from collections.abc import Sequence

# aioquic.buffer re-exports its C Buffer without marking it public.
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.h3.connection import ErrorCode
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicErrorCode, QuicFrameType, pull_quic_header
from aioquic.tls import SessionTicket

from hcore._errors import LocalProtocolError
from hcore._tls import ServerTLSConfig
from hcore._types import Address, Datagram
from hcore.events import ConnectionTerminated
from hcore.protocols.http3._limits import Limits
from hcore.protocols.http3._protocol import AioquicProtocol
from hcore.protocols.http3._quic import (
    FlowControlledQuicConnection,
    peer_certificate,
    unanswered_requests,
)
from hcore.protocols.http3._retry import RetryTokens
from hcore.protocols.http3._routing import parse_datagram_route
from hcore.protocols.http3._streams import (
    ReceiveState,
    SendState,
    Stream,
    from_quic_id,
)
from hcore.protocols.http3._tls import (
    SessionTicketStore,
    check_client_certificate,
)

__all__ = ("AioquicServerProtocol",)


class AioquicServerProtocol(AioquicProtocol):
    """An HTTP/3 server connection, started by the client's first Initial.

    Made by :class:`~hcore.protocols.http3.HTTP3ServerFactory` before any
    datagram arrived.  The aioquic connection is created from the first
    datagram that is an Initial packet of a supported version (its
    destination connection id is the original one, RFC 9000 §7.3); anything
    else before it is dropped.

    With Retry tokens (the factory's ``retry_key``), an Initial without a
    token is answered with a Retry packet (RFC 9000 §8.1.2) and the protocol
    ends at once, keeping nothing: the client's second Initial, with the
    token, reaches a new protocol, which checks the token and only then
    starts the handshake.  An Initial with a token that is not valid is
    dropped and ends the protocol too (RFC 9000 §8.1.3 allows discarding).
    """

    _is_client = False

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        tls_config: ServerTLSConfig,
        limits: Limits,
        ticket_store: SessionTicketStore | None = None,
        retry: RetryTokens | None = None,
    ) -> None:
        """Make a server protocol (the factory does, from a TLS config).

        :param configuration: the QUIC configuration.
        :param tls_config: the TLS settings, for checking client certificates.
        :param limits: the factory's tunables.
        :param ticket_store: where issued session tickets are kept for
            resumption; ``None`` issues none.
        :param retry: validate client addresses with Retry tokens.
        """
        super().__init__(limits=limits)
        self._configuration = configuration
        self._tls_config = tls_config
        self._ticket_store = ticket_store
        self._original_cid = b""
        self._retry = retry
        # Stateless replies (a Retry) sent even though the protocol ended.
        self._replies: list[Datagram] = []
        # The highest request stream seen, for the GOAWAY we may send.
        self._highest_request: int | None = None

    def is_available(self) -> bool:
        """Always false: HTTP/3 servers do not open request streams."""
        return False

    def get_available_stream_id(self) -> int:
        """Servers open no streams.

        :raises LocalProtocolError: always.
        """
        raise LocalProtocolError("an HTTP/3 server does not open streams")

    def datagram_received(self, datagram: Datagram) -> None:
        """Feed a datagram; the first Initial of a supported version starts it.

        :raises LocalProtocolError: if ``clock()`` was never called.
        """
        if self._h3 is None and self._now is not None and not self._terminated:
            address = (str(datagram.address[0]), int(datagram.address[1]))
            self._accept(bytes(datagram.data), address)
        super().datagram_received(datagram)

    def datagrams_to_send(self) -> Sequence[Datagram]:
        """Take the datagrams to send, a Retry included."""
        replies = self._replies
        if not replies:
            return super().datagrams_to_send()
        self._replies = []
        return [*replies, *super().datagrams_to_send()]

    def _open_stream(
        self, quic_id: int, block: list[tuple[bytes, bytes]], end_stream: bool
    ) -> None:
        raise LocalProtocolError(
            f"stream {from_quic_id(quic_id)} has no request to answer"
        )

    def _accept(self, data: bytes, address: Address) -> None:
        limits = self._limits
        route = parse_datagram_route(
            data, limits.connection_id_length, limits.supported_versions
        )
        if not route.is_initial:
            return
        original = route.destination_connection_id
        retry_cid: bytes | None = None
        if self._retry is not None:
            validated = self._validate(data, route.version or 0, address)
            if validated is None:
                return
            original, retry_cid = validated, route.destination_connection_id
        store = self._ticket_store
        quic = FlowControlledQuicConnection(
            configuration=self._configuration,
            receive_window=limits.stream_receive_window,
            held_bytes=self._held_bytes,
            request_client_certificate=self._tls_config.require_client_certificate,
            original_destination_connection_id=original,
            retry_source_connection_id=retry_cid,
            session_ticket_fetcher=self._fetch_ticket if store is not None else None,
            session_ticket_handler=self._keep_ticket if store is not None else None,
        )
        self._quic = quic
        self._original_cid = route.destination_connection_id
        self._connection_ids[route.destination_connection_id] = None
        self._connection_ids[quic.host_cid] = None
        self._control_stream_id = quic.get_next_available_stream_id(
            is_unidirectional=True
        )
        self._h3 = self._new_h3(quic)

    def _validate(self, data: bytes, version: int, address: Address) -> bytes | None:
        """Check the Initial's Retry token, or answer it with a Retry.

        :return: the original destination connection id of a valid token;
            ``None`` when the protocol ended (a Retry was queued, or the
            token is invalid).
        """
        retry = self._retry
        now = self._now
        assert retry is not None and now is not None
        header = pull_quic_header(
            Buffer(data=data), host_cid_length=self._limits.connection_id_length
        )
        if not header.token:
            # RFC 9000 §8.1.2: ask the client to prove its address.
            packet = retry.retry(
                version=version,
                client_cid=header.source_cid,
                original_cid=header.destination_cid,
                address=address,
                now=now,
            )
            self._replies.append(Datagram(packet, address))
            self._terminate(
                ConnectionTerminated(
                    ErrorCode.H3_NO_ERROR, "client address not validated: Retry sent"
                )
            )
            return None
        original = retry.validate(
            header.token,
            address=address,
            destination_cid=header.destination_cid,
            now=now,
        )
        if original is None:
            # RFC 9000 §8.1.3: a server may discard an Initial with an
            # invalid token rather than close with INVALID_TOKEN.
            self._terminate(
                ConnectionTerminated(
                    QuicErrorCode.INVALID_TOKEN, "invalid Retry token: Initial dropped"
                )
            )
        return original

    def _on_handshake(self, event: quic_events.HandshakeCompleted) -> None:
        super()._on_handshake(event)
        # The client has our connection ids now (RFC 9000 §7.2).
        self._connection_ids.pop(self._original_cid, None)
        if self._tls_config.require_client_certificate:
            assert self._quic is not None
            certificate, chain = peer_certificate(self._quic)
            refusal = check_client_certificate(self._tls_config, certificate, chain)
            if refusal is not None:
                alert, reason = refusal
                # RFC 9001 §4.8: a TLS alert closes QUIC with 0x100 + alert.
                self._close_quic(
                    QuicErrorCode.CRYPTO_ERROR + alert, reason, QuicFrameType.CRYPTO
                )

    def _on_request(self, quic_id: int, ended: bool) -> Stream | None:
        if self._goaway_sent is not None and quic_id >= self._goaway_sent:
            # RFC 9114 §5.2: requests at or above our GOAWAY are refused
            # unprocessed, so the client may retry them elsewhere.
            self._abandon(quic_id, ErrorCode.H3_REQUEST_REJECTED, receiving=not ended)
            return None
        if self._highest_request is None or quic_id > self._highest_request:
            self._highest_request = quic_id
        stream = Stream(quic_id, SendState.IDLE, ReceiveState.HEADERS)
        self._streams[quic_id] = stream
        return stream

    def _maybe_close(self) -> None:
        quic = self._quic
        if (
            quic is not None
            and self._goaway_sent is not None
            and not (self._closing or self._terminated)
        ):
            # RFC 9114 §5.2: a request at or above our GOAWAY whose head is
            # still coming is refused unprocessed too, as _on_request refuses
            # a whole one (§4.1.1: H3_REQUEST_REJECTED), rather than waited
            # for: the client may never finish it, and the close (with its
            # CONNECTION_CLOSE) would wait as long.
            for quic_id in unanswered_requests(quic, self._goaway_sent):
                self._abandon(quic_id, ErrorCode.H3_REQUEST_REJECTED, receiving=True)
        super()._maybe_close()

    def _goaway_identifier(self) -> int:
        # RFC 9114 §5.2: the first request stream we will not process.
        if self._highest_request is None:
            return 0
        return self._highest_request + 4

    def _on_goaway(self, identifier: int) -> None:
        previous = self._goaway_received
        if previous is not None and identifier > previous:
            self._close_quic(ErrorCode.H3_ID_ERROR, "GOAWAY push id increased")
            return
        self._goaway_received = identifier
        if previous is None:
            # The client is shutting down.  Its GOAWAY carries a push id, and
            # a server opens no streams the client could have processed.
            self._emit_goaway(0, [])

    def _fetch_ticket(self, label: bytes) -> SessionTicket | None:
        assert self._ticket_store is not None
        return self._ticket_store._take(label)

    def _keep_ticket(self, ticket: SessionTicket) -> None:
        assert self._ticket_store is not None
        self._ticket_store._add(ticket.ticket, ticket)
