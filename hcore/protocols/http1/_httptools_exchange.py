"""The half of the httptools (llhttp) HTTP/1.1 client that does not touch llhttp.

The exchange's state on both sides, the peer's end of the tunnel, and the
end of the connection; the body writer and what the server shares are in
:mod:`hcore.protocols.http1._httptools_common`.  See the theory of
operation in :mod:`hcore.protocols.http1._httptools_client`, whose class
adds the parser callbacks and the request heads.

An exchange runs: the request is sent (``_request_state`` 1 while its body
is, 2 once complete), its response head is awaited (``_in_head``, through
any 1xx), the body arrives, and the response is complete
(``_response_done``).  When both messages are complete the exchange is over:
the next one starts on the next odd stream id if the connection may be
reused (RFC 9112 §9.3), else the connection ends.
"""

from __future__ import annotations

from abc import abstractmethod

from hcore._error_codes import HTTP1_ERROR_CODES
from hcore.events import DataReceived
from hcore.protocols.http1._httptools_common import ToolsConnection
from hcore.protocols.http1._roles import ClientRole

__all__ = ("ClientExchange",)


class ClientExchange(ClientRole, ToolsConnection):
    """The client end of HTTP/1.1 over one TCP (or TLS) connection, short of llhttp.

    One request at a time (no pipelining).  HTTP/1.1 has no flow control:
    :meth:`pending_data_size` is always ``0`` and
    :class:`~hcore.events.SendBufferDrained` is never emitted.

    :param max_header_size: largest response head accepted, in bytes.
    :param max_header_count: most fields accepted in a head or trailers.
    """

    __slots__ = (
        "_dangling",
        "_head_size",
        "_in_head",
        "_keep_alive",
        "_method",
        "_proposed_tunnel",
        "_proposed_upgrade",
        "_request_state",
        "_response_done",
        "_until_close",
    )

    def __init__(self, *, max_header_size: int, max_header_count: int) -> None:
        super().__init__(
            max_header_size=max_header_size, max_header_count=max_header_count
        )
        #: An earlier exchange whose request side the caller left open after
        #: the tunnel was refused; ending it is accepted and does nothing.
        self._dangling: int | None = None
        self._new_exchange()

    def _new_exchange(self) -> None:
        #: 0: no request yet; 1: its body is being sent; 2: complete.
        self._request_state = 0
        self._sending = None
        self._method = b""
        #: The request proposed a tunnel (CONNECT, Upgrade); its head was the
        #: whole request on the wire.
        self._proposed_tunnel = False
        self._proposed_upgrade = False
        self._keep_alive = True
        self._in_head = False
        self._head_size = 0
        self._until_close = False
        self._response_done = False

    def _start_exchange(self, method: bytes, *, upgrade: bool, close: bool) -> None:
        """A request head was written; await its response."""
        self._request_state = 1
        self._method = method
        self._proposed_upgrade = upgrade
        # RFC 9112 §9.6: a request with "close" is the last.
        self._keep_alive = not close
        self._in_head = True

    # -- HTTPProtocol ---------------------------------------------------------

    def is_available(self) -> bool:
        """Whether a request can be sent now: connection idle and not closing."""
        return (
            not self._closed
            and not self._tunnel
            and not self._closing
            and self._request_state == 0
        )

    # -- OverTCPProtocol -------------------------------------------------------

    def bytes_received(self, data: bytes) -> None:
        """Feed bytes from the peer; bad input becomes events, never raises."""
        if not data or self._eof or self._closed:
            return
        if self._tunnel:
            raw = data if type(data) is bytes else bytes(data)
            self._emit(DataReceived(self._stream_id, raw))
            return
        self._feed(data)

    def eof_received(self) -> None:
        """Tell the protocol the peer will send no more bytes.

        Between exchanges, or after a complete response, this ends the
        connection without error; it ends a body read until the close; in
        the middle of a message it is an error; in a tunnel it ends the
        peer's direction (``DataReceived(b"", end_stream=True)``).
        """
        if self._eof or self._closed:
            return
        self._eof = True
        if self._tunnel:
            self._tunnel_remote_ended = True
            self._emit(DataReceived(self._stream_id, b"", end_stream=True))
            self._tunnel_check_done()
            return
        self._peer_closed = True
        if self._end_until_close():
            return
        if not self._request_state or self._response_done:
            self._terminate(
                self._close_code, self._close_message or "connection closed by the peer"
            )
        else:
            self._terminate(
                HTTP1_ERROR_CODES.protocol_error,
                "connection closed by the peer mid-message (incomplete response)",
            )

    # -- the parser's part -----------------------------------------------------

    @abstractmethod
    def _feed(self, data: bytes) -> None:
        """Run the parser on bytes from the peer."""

    @abstractmethod
    def _end_until_close(self) -> bool:
        """The peer closed: end a body read until then; whether there was one."""

    # -- machinery -------------------------------------------------------------

    def _exchange_open(self) -> bool:
        return self._tunnel or self._request_state != 0

    def _mid_exchange(self) -> bool:
        return self._request_state != 0

    def _message_sent(self) -> None:
        self._request_state = 2
        self._after_step()

    def _response_complete(self) -> None:
        self._response_done = True
        self._in_head = False
        self._after_step()

    def _after_step(self) -> None:
        """End the exchange if both messages are complete, or the connection."""
        if not self._response_done or self._closed:
            return
        reusable = self._keep_alive and not self._closing and not self._peer_closed
        if reusable and self._request_state == 2:
            if self._proposed_tunnel and not self._tunnel_local_ended:
                self._dangling = self._stream_id
            self._tunnel_local_ended = False
            self._stream_id += 2
            self._new_exchange()
        elif self._request_state == 2 or not reusable:
            self._end_after_exchange(self._peer_closed)
