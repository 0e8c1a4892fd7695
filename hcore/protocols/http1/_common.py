"""What every HTTP/1.1 protocol here shares, whichever parser it runs on.

:class:`HTTP1Base` is the base of the h11 protocols
(:class:`~hcore.protocols.http1.H11Protocol`) and of the httptools (llhttp)
ones.  It holds the queues of events and of bytes to send, the answers that
are the same on every HTTP/1.1 connection (no multiplexing, no flow
control), and the paths to the end of the connection that do not depend on
the parser: :meth:`~HTTP1Base.submit_stream_reset`,
:meth:`~HTTP1Base.submit_close`, :meth:`~HTTP1Base.connection_lost` and the
tunnel's close.  A subclass says, through a few small hooks, whether the
connection is a tunnel and whether an exchange is in progress.
"""

from __future__ import annotations

from abc import abstractmethod

from hcore._error_codes import HTTP1_ERROR_CODES, HTTPErrorCodes
from hcore._errors import LocalProtocolError
from hcore.events import DataReceived, Event, HeadersReceived
from hcore.protocols._protocols import HTTPOverTCPProtocol

__all__ = ("HTTP1Base", "tokens")


#: Taken events kept before the events list is cut.
_CUT = 64


def tokens(value: bytes) -> list[bytes]:
    """Split a comma-separated field value into lower-case tokens (RFC 9110 §5.6.1)."""
    return [token.strip() for token in value.lower().split(b",") if token.strip()]


class HTTP1Base(HTTPOverTCPProtocol):
    """HTTP/1.1 over one TCP (or TLS) connection, short of a parser.

    HTTP/1.1 has no flow control: :meth:`pending_data_size` is always ``0``
    and :class:`~hcore.events.SendBufferDrained` is never emitted.  A
    subclass's ``__init__`` calls :meth:`_init_common` first.
    """

    __slots__ = (
        "_close_code",
        "_close_message",
        "_closing",
        "_eof",
        "_events",
        "_input_stopped",
        "_limits",
        "_outgoing",
        "_sending",
        "_stream_id",
        "_taken",
        "_tunnel_local_ended",
        "_tunnel_remote_ended",
    )

    _events: list[Event]
    _taken: int
    _outgoing: list[bytes]
    _stream_id: int
    _closing: bool
    _input_stopped: bool
    _close_code: int
    _close_message: str | None
    _tunnel_local_ended: bool
    _tunnel_remote_ended: bool

    def _init_common(self) -> None:
        """Set up the state every HTTP/1.1 protocol keeps."""
        # A list read from ``_taken`` on, emptied when all is taken (and its
        # taken head cut off when it is most of the list): an idle
        # connection holds an empty list, not a deque's 64-slot block.
        self._events = []
        self._taken = 0
        self._outgoing = []
        #: The exchange in progress or, between exchanges, the next one.
        self._stream_id = 1
        #: No exchange may start after the current one.
        self._closing = False
        self._close_code = 0
        self._close_message = None
        self._tunnel_local_ended = False
        self._tunnel_remote_ended = False

    # -- HTTPProtocol: properties -------------------------------------------

    @property
    def http_version(self) -> str:
        """Always ``"1.1"``."""
        return "1.1"

    @property
    def multiplexed(self) -> bool:
        """Always false: one exchange at a time."""
        return False

    @property
    def error_codes(self) -> HTTPErrorCodes:
        """:data:`~hcore.HTTP1_ERROR_CODES` (status codes, used locally)."""
        return HTTP1_ERROR_CODES

    def pending_data_size(self, stream_id: int) -> int:
        """Always ``0``: HTTP/1.1 has no flow control, data is never held."""
        return 0

    def next_event(self) -> Event | None:
        """Take the next event, or ``None`` when there is none for now."""
        events = self._events
        if not events:
            return None
        taken = self._taken
        event = events[taken]
        taken += 1
        if taken == len(events):
            # All taken: clear() frees the list's storage.
            events.clear()
            taken = 0
        elif taken >= _CUT and taken * 2 >= len(events):
            # A caller that never empties the queue must not keep what it
            # took: cutting when half is taken costs O(1) per event.
            del events[:taken]
            taken = 0
        self._taken = taken
        return event

    # -- HTTPProtocol: ending ----------------------------------------------------

    def submit_stream_reset(self, stream_id: int, error_code: int = 0) -> None:
        """Abandon the current exchange by closing the connection.

        HTTP/1.1 cannot reset one exchange, so the connection ends at once:
        a :class:`~hcore.events.ConnectionTerminated` carrying ``error_code``
        is queued (like every end of the connection; there is no
        :class:`~hcore.events.StreamResetSent`, as resets asked for are not
        echoed).  Bytes already queued are still handed out.  Resetting a
        finished exchange, or anything once the connection is over, does
        nothing.

        :raises LocalProtocolError: if ``stream_id`` was never opened.
        """
        if self.has_expired():
            return
        if stream_id == self._stream_id and self._exchange_open():
            self._terminate(
                error_code,
                f"stream {stream_id} reset by this side, "
                "which on HTTP/1.1 closes the connection",
            )
        elif not (stream_id % 2 == 1 and 0 < stream_id < self._stream_id):
            raise LocalProtocolError(f"stream {stream_id} was never opened")
        else:
            self._stream_forgotten(stream_id)

    def submit_close(self, error_code: int = 0) -> None:
        """Allow no exchange after the current one; close now if idle.

        A server adds ``Connection: close`` to the response it has not sent
        yet.  When the exchange (or a tunnel) ends, the connection ends with
        a :class:`~hcore.events.ConnectionTerminated` carrying
        ``error_code``.
        """
        if self.has_expired():
            return
        self._closing = True
        self._close_code = error_code
        self._close_message = "connection closed by this side"
        if not self._in_tunnel():
            if not self._exchange_open():
                self._terminate(error_code, self._close_message)
            else:
                self._after_step()

    # -- OverTCPProtocol -------------------------------------------------------

    def connection_lost(self) -> None:
        """Tell the protocol the connection is gone; ends it if not over yet."""
        if self.has_expired():
            return
        if self._in_tunnel():
            self._terminate(
                HTTP1_ERROR_CODES.connect_error, "connection lost during the tunnel"
            )
        elif self._mid_exchange():
            self._terminate(
                HTTP1_ERROR_CODES.protocol_error,
                "connection lost before the exchange was complete",
            )
        else:
            self._terminate(HTTP1_ERROR_CODES.no_error, "connection lost")

    def bytes_to_send(self) -> bytes:
        """Take the bytes waiting to be written to the peer."""
        outgoing = self._outgoing
        if not outgoing:
            return b""
        # One bytes chunk is handed out as it is, without a copy.
        data = b"".join(outgoing)
        outgoing.clear()
        return data

    # -- hooks -------------------------------------------------------------------

    @abstractmethod
    def _in_tunnel(self) -> bool:
        """Whether the connection carries a tunnel; asked only before the end."""

    @abstractmethod
    def _exchange_open(self) -> bool:
        """Whether the current stream id names an exchange that has begun."""

    @abstractmethod
    def _mid_exchange(self) -> bool:
        """Whether losing the connection now cuts an exchange short."""

    @abstractmethod
    def _after_step(self) -> bool | None:
        """End the exchange, or the connection, if the messages allow."""

    @abstractmethod
    def _terminate(self, code: int, message: str) -> None:
        """End the connection: queue its one ConnectionTerminated."""

    @abstractmethod
    def _data_without_body(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """``submit_data`` on a stream that is not sending a body now."""

    def _stream_forgotten(self, stream_id: int) -> None:
        """``submit_stream_reset`` on a finished exchange; nothing by default."""

    # -- machinery -------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _emit_end(self) -> None:
        """Say the peer's message on the current stream is complete.

        The flag goes on the previous event when the application has not
        taken it yet, the way HTTP/2 carries END_STREAM on HEADERS or DATA.
        """
        events = self._events
        # The last event in the list was not handed out yet: the list is
        # emptied once all are taken.
        last = events[-1] if events else None
        stream_id = self._stream_id
        if (
            (type(last) is HeadersReceived or type(last) is DataReceived)
            and last.stream_id == stream_id
            and not last.end_stream
        ):
            # Set on the queued event itself, which nothing else holds yet:
            # the same as building a copy with the flag, without the copy.
            object.__setattr__(last, "end_stream", True)
        else:
            self._emit(DataReceived(stream_id, b"", end_stream=True))

    def _send_tunnelled(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """``submit_data`` once the stream is a tunnel: raw bytes, no framing."""
        if stream_id != self._stream_id:
            raise LocalProtocolError(f"stream {stream_id} is not open")
        if self._tunnel_local_ended:
            raise LocalProtocolError("the tunnel has already ended on this side")
        if data:
            self._outgoing.append(data if type(data) is bytes else bytes(data))
        if end_stream:
            self._tunnel_local_ended = True
            self._tunnel_check_done()

    def _stop_reading(self, max_pipelined_size: int) -> None:
        """The peer sent more than ``max_pipelined_size`` bytes ahead: stop reading.

        The current exchange finishes (with ``Connection: close`` if its
        response has not started) and then the connection ends.  The
        requests held back were not answered, so a client may retry them
        (RFC 9112 §9.3.2).  Sets ``_input_stopped``, which the subclass
        reads to drop further input.
        """
        self._input_stopped = True
        self._closing = True
        self._close_code = HTTP1_ERROR_CODES.enhance_your_calm
        self._close_message = (
            f"the peer sent more than {max_pipelined_size} bytes "
            "ahead of the current exchange"
        )

    def _end_after_exchange(self, peer_closed: bool) -> None:
        """End the connection after the last exchange, saying why."""
        if self._close_message is not None:
            message = self._close_message
        elif peer_closed:
            message = "connection closed by the peer"
        else:
            message = "connection closed after the exchange (Connection: close)"
        self._terminate(self._close_code, message)

    def _tunnel_check_done(self) -> None:
        if self._tunnel_local_ended and self._tunnel_remote_ended:
            self._terminate(HTTP1_ERROR_CODES.no_error, "tunnel closed by both sides")
