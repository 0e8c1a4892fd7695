"""The client side of HTTP/3 over aioquic."""

from __future__ import annotations

from aioquic.h3.connection import ErrorCode
from aioquic.quic.configuration import QuicConfiguration
from aioquic.tls import SessionTicket

from hcore._errors import LocalProtocolError
from hcore._types import Address
from hcore.protocols.http3._limits import Limits
from hcore.protocols.http3._protocol import AioquicProtocol
from hcore.protocols.http3._quic import (
    FlowControlledQuicConnection,
    peer_bidi_stream_limit,
)
from hcore.protocols.http3._streams import (
    ReceiveState,
    SendState,
    Stream,
    check_request,
    from_quic_id,
)
from hcore.protocols.http3._tls import SessionTicketStore

__all__ = ("AioquicClientProtocol",)


class AioquicClientProtocol(AioquicProtocol):
    """An HTTP/3 client connection to one server address.

    Made by :class:`~hcore.protocols.http3.HTTP3ClientFactory`.  The first
    ``clock()`` starts the handshake; requests submitted before it completes
    wait in aioquic, or go out as 0-RTT data when a session ticket allows.
    Every datagram goes to, and is only accepted from, the ``remote_address``
    given.
    """

    _is_client = True

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        remote_address: Address,
        limits: Limits,
        ticket_store: SessionTicketStore | None = None,
    ) -> None:
        """Make a client protocol (the factory does, from a TLS config).

        :param configuration: the QUIC configuration.
        :param remote_address: the server's address.
        :param limits: the factory's tunables.
        :param ticket_store: where new session tickets are filed, under the
            configuration's server name.
        """
        super().__init__(limits=limits)
        self._remote_address: Address = (str(remote_address[0]), int(remote_address[1]))
        self._server_name = configuration.server_name or ""
        self._ticket_store = ticket_store
        self._quic = FlowControlledQuicConnection(
            configuration=configuration,
            receive_window=limits.stream_receive_window,
            held_bytes=self._held_bytes,
            session_ticket_handler=self._keep_ticket
            if ticket_store is not None
            else None,
        )
        self._connection_ids[self._quic.host_cid] = None

    def clock(self, now: float) -> None:
        """Tell the time; the first call starts the handshake."""
        quic = self._quic
        if self._h3 is None and quic is not None and not self._terminated:
            self._now = now
            quic.connect(self._remote_address, now)
            # H3Connection opens our control stream first (RFC 9114 §6.2.1);
            # note its id for GOAWAY.  It is made after connect() so that its
            # streams may use 0-RTT limits restored from a session ticket.
            self._control_stream_id = quic.get_next_available_stream_id(
                is_unidirectional=True
            )
            self._h3 = self._new_h3(quic)
            return
        super().clock(now)

    def is_available(self) -> bool:
        """Whether a request can be opened now, within the server's stream limit."""
        quic = self._quic
        if quic is None or self._h3 is None or self.has_expired():
            return False
        limit = peer_bidi_stream_limit(quic)
        if limit == 0 and not self._handshake_complete:
            # The limit comes with the handshake; aioquic holds streams
            # opened before it until then.
            return True
        return quic.get_next_available_stream_id() // 4 < limit

    def get_available_stream_id(self) -> int:
        """The id the next request must use.

        :raises LocalProtocolError: once the connection expired.
        """
        if self.has_expired():
            raise LocalProtocolError("the connection accepts no new streams")
        assert self._quic is not None
        return from_quic_id(self._quic.get_next_available_stream_id())

    def _open_stream(
        self, quic_id: int, block: list[tuple[bytes, bytes]], end_stream: bool
    ) -> None:
        quic, h3 = self._quic, self._h3
        assert quic is not None and h3 is not None
        if self.has_expired():
            raise LocalProtocolError("the connection accepts no new streams")
        expected = quic.get_next_available_stream_id()
        if quic_id != expected:
            raise LocalProtocolError(
                f"stream {from_quic_id(quic_id)} cannot be opened now; "
                f"the next one is {from_quic_id(expected)}"
            )
        check_request(block)
        h3.send_headers(quic_id, block, end_stream=end_stream)
        self._streams[quic_id] = Stream(
            quic_id,
            SendState.ENDED if end_stream else SendState.OPEN,
            ReceiveState.HEADERS,
        )

    def _on_request(self, quic_id: int, ended: bool) -> Stream | None:
        # Responses only come on streams we opened (H3Connection refuses
        # others); those we forgot were reset and their late frames dropped.
        return None

    def _goaway_identifier(self) -> int:
        # RFC 9114 §5.2: a client's GOAWAY carries a push id; as we never
        # accept pushes, none may be sent from the first on.
        return 0

    def _on_goaway(self, identifier: int) -> None:
        previous = self._goaway_received
        if identifier % 4 != 0 or (previous is not None and identifier > previous):
            # RFC 9114 §5.2: a client-initiated bidirectional stream id, never
            # larger than in an earlier GOAWAY.
            self._close_quic(ErrorCode.H3_ID_ERROR, "GOAWAY with an invalid stream id")
            return
        self._goaway_received = identifier
        if identifier == previous:
            return
        unprocessed = sorted(
            quic_id for quic_id in self._streams if quic_id >= identifier
        )
        last = from_quic_id(identifier - 4) if identifier >= 4 else 0
        self._emit_goaway(last, unprocessed)

    def _keep_ticket(self, ticket: SessionTicket) -> None:
        assert self._ticket_store is not None
        self._ticket_store._add(self._server_name, ticket)
