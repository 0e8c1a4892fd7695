"""The HTTP/1.1 protocol on h11: what the client and the server share.

Theory of operation
===================

h11 keeps the state of one request/response cycle for each side (IDLE,
SEND_BODY, DONE, MUST_CLOSE, ...), parses what arrives and frames what is
sent.  This wrapper adds what hcore expects around it:

* Exchanges are numbered like HTTP/2 streams, 1, 3, 5, ...;
  ``_stream_id`` is the exchange in progress or, between exchanges, the next.
* Parsing is eager: ``bytes_received`` runs h11 until it needs more bytes or
  pauses, queueing hcore events.  When the last piece of a message arrives
  together with its head or data, ``end_stream`` is set on that event
  instead of queueing an empty one.
* An exchange is over when the response is complete.  If both messages are
  complete and nobody asked to close, h11 starts the next cycle and the
  bytes the peer sent ahead are parsed; if the connection must close, or the
  request is still running when the response was the last one, the protocol
  terminates.
* h11 pauses when the peer finished its message and sent more: a pipelined
  request (RFC 9112 §9.3.2), or bytes sent into a tunnel before CONNECT was
  answered.  They wait in h11's buffer; a server bounds how many.
* After a 2xx to CONNECT or a 101, h11 steps aside (SWITCHED_PROTOCOL) and
  the protocol moves raw bytes, beginning with those h11 had buffered.
* Every path to the end (last exchange done, EOF, connection lost, bad
  input, ``submit_stream_reset``, ``submit_close``) goes through
  :meth:`H11Protocol._terminate`, which queues exactly one
  :class:`~hcore.events.ConnectionTerminated`.

The phases run HTTP → TUNNEL → CLOSED, or HTTP → CLOSED.  Before each call
into ``h11.Connection.send`` the call is checked here (framing, state, stream
id), because a refused send would leave h11 in its ERROR state; so misuse
raises :class:`~hcore.LocalProtocolError` and changes nothing.
"""

from __future__ import annotations

import dataclasses
import enum
from abc import abstractmethod
from collections import deque
from typing import cast

import h11

from hcore._error_codes import HTTP1_ERROR_CODES, HTTPErrorCodes
from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    HeadersReceived,
    TrailersReceived,
)
from hcore.protocols._protocols import HTTPOverTCPProtocol
from hcore.protocols.http1._headers import OutgoingBody, plan_trailers
from hcore.protocols.http1._limits import HeadLimits

__all__ = ("H11Protocol",)

_COMPLETE = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)


class _Phase(enum.Enum):
    HTTP = "http"
    TUNNEL = "tunnel"
    CLOSED = "closed"


class H11Protocol(HTTPOverTCPProtocol):
    """HTTP/1.1 over one TCP (or TLS) connection, on h11.

    Use :class:`~hcore.protocols.http1.H11ClientProtocol` or
    :class:`~hcore.protocols.http1.H11ServerProtocol`, usually made by a
    factory.  HTTP/1.1 has no flow control: :meth:`pending_data_size` is
    always ``0`` and :class:`~hcore.events.SendBufferDrained` is never
    emitted; memory stays bounded because the I/O layer feeds bytes only as
    fast as the application takes events.

    :param client: play the client role (else the server's).
    :param max_header_size: largest message head accepted, in bytes.
    :param max_header_count: most fields accepted in a head or trailers.
    :param max_pipelined_size: most bytes held that the peer sent ahead of
        the current exchange.
    """

    def __init__(
        self,
        *,
        client: bool,
        max_header_size: int,
        max_header_count: int,
        max_pipelined_size: int,
    ) -> None:
        self._h11 = h11.Connection(
            h11.CLIENT if client else h11.SERVER,
            max_incomplete_event_size=max_header_size,
        )
        self._limits = HeadLimits(max_header_size, max_header_count)
        self._max_pipelined_size = max_pipelined_size
        self._phase = _Phase.HTTP
        self._stream_id = 1
        self._events: deque[Event] = deque()
        self._outgoing: list[bytes] = []
        #: The body of the message this side is sending, once its head went.
        self._sending: OutgoingBody | None = None
        self._tunnel_local_ended = False
        self._tunnel_remote_ended = False
        self._eof = False
        #: No exchange may start after the current one.
        self._closing = False
        self._close_code = 0
        self._close_message: str | None = None
        #: The peer sent too much ahead; further bytes are dropped.
        self._input_stopped = False
        #: Bytes h11 holds while paused, when it is paused.
        self._paused_size: int | None = None

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

    def has_expired(self) -> bool:
        """Whether the connection is over.

        True once :class:`~hcore.events.ConnectionTerminated` was queued.  An
        exchange that is the last one (``Connection: close``,
        :meth:`submit_close`) still runs to its end first, so the I/O layer,
        which closes expired connections, does not cut it short;
        :meth:`is_available` is false meanwhile.
        """
        return self._phase is _Phase.CLOSED

    def pending_data_size(self, stream_id: int) -> int:
        """Always ``0``: HTTP/1.1 has no flow control, data is never held."""
        return 0

    def next_event(self) -> Event | None:
        """Take the next event, or ``None`` when there is none for now."""
        return self._events.popleft() if self._events else None

    # -- HTTPProtocol: submitting --------------------------------------------

    def submit_data(
        self, stream_id: int, data: bytes, end_stream: bool = False
    ) -> None:
        """Send a piece of the body, or raw bytes once the stream is a tunnel.

        :raises LocalProtocolError: if the stream is not sending a body, the
            piece breaks ``Content-Length``, or the stream already ended.
        """
        self._check_usable()
        if self._phase is _Phase.TUNNEL:
            if stream_id != self._stream_id:
                raise LocalProtocolError(f"stream {stream_id} is not open")
            if self._tunnel_local_ended:
                raise LocalProtocolError("the tunnel has already ended on this side")
            if data:
                self._outgoing.append(bytes(data))
            if end_stream:
                self._tunnel_local_ended = True
                self._tunnel_check_done()
            return
        body = self._sending
        if stream_id != self._stream_id or body is None:
            self._data_without_body(stream_id, data, end_stream)
            return
        body.check(len(data), end_stream)
        if data:
            self._send(h11.Data(data=data))
        if end_stream:
            self._send(h11.EndOfMessage())
        body.consume(len(data), end_stream)
        if end_stream and self._after_step():
            self._receive()

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
        if self._phase is _Phase.CLOSED:
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
        if self._phase is _Phase.CLOSED:
            return
        self._closing = True
        self._close_code = error_code
        self._close_message = "connection closed by this side"
        if self._phase is _Phase.HTTP:
            if not self._exchange_open():
                self._terminate(error_code, self._close_message)
            else:
                self._after_step()

    # -- OverTCPProtocol -------------------------------------------------------

    def bytes_received(self, data: bytes) -> None:
        """Feed bytes from the peer; bad input becomes events, never raises."""
        if not data or self._eof or self._phase is _Phase.CLOSED:
            return
        if self._phase is _Phase.TUNNEL:
            self._emit(DataReceived(self._stream_id, bytes(data)))
            return
        if self._input_stopped:
            return
        self._h11.receive_data(data)
        if self._paused_size is None:
            self._receive()
        else:
            self._paused_size += len(data)
            self._check_paused_size()

    def eof_received(self) -> None:
        """Tell the protocol the peer will send no more bytes.

        Between exchanges this ends the connection without error; in the
        middle of a message it is an error; in a tunnel it ends the peer's
        direction (``DataReceived(b"", end_stream=True)``).
        """
        if self._eof or self._phase is _Phase.CLOSED:
            return
        self._eof = True
        if self._phase is _Phase.TUNNEL:
            self._tunnel_remote_ended = True
            self._emit(DataReceived(self._stream_id, b"", end_stream=True))
            self._tunnel_check_done()
            return
        self._h11.receive_data(b"")
        if self._paused_size is None:
            self._receive()

    def connection_lost(self) -> None:
        """Tell the protocol the connection is gone; ends it if not over yet."""
        if self._phase is _Phase.CLOSED:
            return
        if self._phase is _Phase.TUNNEL:
            self._terminate(
                HTTP1_ERROR_CODES.connect_error, "connection lost during the tunnel"
            )
        elif self._exchange_open() or self._h11.trailing_data[0]:
            self._terminate(
                HTTP1_ERROR_CODES.protocol_error,
                "connection lost before the exchange was complete",
            )
        else:
            self._terminate(HTTP1_ERROR_CODES.no_error, "connection lost")

    def bytes_to_send(self) -> bytes:
        """Take the bytes waiting to be written to the peer."""
        if not self._outgoing:
            return b""
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        return data

    # -- role-specific parts ---------------------------------------------------

    @abstractmethod
    def _exchange_open(self) -> bool:
        """Whether the current stream id names an exchange that has begun."""

    @abstractmethod
    def _exchange_states(self) -> tuple[object, object]:
        """h11's states of the response and of the request, in that order."""

    @abstractmethod
    def _received_head(self, event: h11.Event) -> None:
        """Handle a request (server) or a response (client) head."""

    @abstractmethod
    def _receive_failed(self, code: int, message: str) -> None:
        """Handle bad input from the peer; must end in :meth:`_terminate`."""

    @abstractmethod
    def _may_parse(self) -> bool:
        """Whether h11 may be asked for the next event now."""

    @abstractmethod
    def _message_ended(self) -> None:
        """The peer's message ended without trailers."""

    @abstractmethod
    def _new_cycle(self) -> None:
        """Reset per-exchange state; ``_stream_id`` is already the new one."""

    @abstractmethod
    def _data_without_body(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """``submit_data`` on a stream that is not sending a body now."""

    def _stream_forgotten(self, stream_id: int) -> None:
        """``submit_stream_reset`` on a finished exchange; nothing by default."""

    # -- machinery -------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._phase is _Phase.CLOSED:
            raise LocalProtocolError("the connection is closed")

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _emit_end(self) -> None:
        """Say the peer's message on the current stream is complete.

        The flag goes on the previous event when the application has not
        taken it yet, the way HTTP/2 carries END_STREAM on HEADERS or DATA.
        """
        last = self._events[-1] if self._events else None
        if (
            isinstance(last, HeadersReceived | DataReceived)
            and last.stream_id == self._stream_id
            and not last.end_stream
        ):
            self._events[-1] = dataclasses.replace(last, end_stream=True)
        else:
            self._emit(DataReceived(self._stream_id, b"", end_stream=True))

    def _send(self, event: h11.Event) -> None:
        try:
            chunks = self._h11.send_with_data_passthrough(event)
        except h11.LocalProtocolError as exc:
            # The checks before each send should make this impossible; if
            # h11 refuses anyway its state is ERROR and the connection is
            # unusable.
            self._terminate(HTTP1_ERROR_CODES.internal_error, f"h11 refused: {exc}")
            raise LocalProtocolError(str(exc)) from exc
        if chunks:
            self._outgoing.extend(chunks)

    def _submit_trailers(
        self, body: OutgoingBody, headers: Headers, end_stream: bool
    ) -> None:
        """Send trailers, which end the body (RFC 9112 §7.1.2)."""
        if not end_stream:
            raise LocalProtocolError("trailers must end the stream")
        eom = plan_trailers(headers, body)
        self._send(eom)
        body.consume(0, True)
        if self._after_step():
            self._receive()

    def _terminate(self, code: int, message: str) -> None:
        if self._phase is _Phase.CLOSED:
            return
        self._phase = _Phase.CLOSED
        self._paused_size = None
        self._emit(ConnectionTerminated(code, message))

    def _receive(self) -> None:
        """Turn what h11 can parse now into events."""
        self._paused_size = None
        while (
            self._phase is _Phase.HTTP
            # After ConnectionClosed h11 has nothing more to say.
            and self._h11.their_state is not h11.CLOSED
            and self._may_parse()
        ):
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                message = str(exc)
                if self._eof:
                    message = f"connection closed by the peer mid-message ({exc})"
                self._receive_failed(exc.error_status_hint, message)
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                if self._h11.their_state is h11.SWITCHED_PROTOCOL:
                    self._enter_tunnel()
                else:
                    self._paused()
                return
            if isinstance(event, h11.Data):
                self._emit(DataReceived(self._stream_id, bytes(event.data)))
            elif isinstance(event, h11.EndOfMessage):
                self._received_end(event)
            elif isinstance(event, h11.ConnectionClosed):
                # h11 repeats ConnectionClosed forever: stop here.  What is
                # left to do happens when this side's message is complete.
                self._after_step()
                return
            else:
                self._received_head(cast(h11.Event, event))

    def _received_end(self, event: h11.EndOfMessage) -> None:
        if event.headers:
            trailers = list(event.headers)
            complaint = self._limits.check(0, trailers)
            if complaint is not None:
                self._receive_failed(431, f"trailers: {complaint}")
                return
            self._emit(TrailersReceived(self._stream_id, tuple(trailers)))
        else:
            self._message_ended()
        self._after_step()

    def _after_step(self) -> bool:
        """End the exchange if the response is complete.

        :return: whether a new cycle started (its buffered bytes still need
            :meth:`_receive`).
        """
        response, request = self._exchange_states()
        if response not in _COMPLETE:
            return False
        reusable = response is h11.DONE and not self._closing
        if reusable and request is h11.DONE:
            self._h11.start_next_cycle()
            self._stream_id += 2
            self._sending = None
            self._new_cycle()
            return True
        if request in _COMPLETE or not reusable:
            if self._close_message is not None:
                message = self._close_message
            elif h11.CLOSED in (response, request):
                message = "connection closed by the peer"
            else:
                message = "connection closed after the exchange (Connection: close)"
            self._terminate(self._close_code, message)
        return False

    def _paused(self) -> None:
        """h11 holds bytes the peer sent past its current message; bound them."""
        self._paused_size = len(self._h11.trailing_data[0])
        self._check_paused_size()

    def _check_paused_size(self) -> None:
        if self._paused_size is None or self._paused_size <= self._max_pipelined_size:
            return
        # Stop reading: the current exchange finishes (with Connection: close
        # if its response has not started) and then the connection ends.  The
        # requests held back were not answered, so a client may retry them
        # (RFC 9112 §9.3.2).
        self._input_stopped = True
        self._paused_size = None
        self._closing = True
        self._close_code = HTTP1_ERROR_CODES.enhance_your_calm
        self._close_message = (
            f"the peer sent more than {self._max_pipelined_size} bytes "
            "ahead of the current exchange"
        )

    def _enter_tunnel(self) -> None:
        """Hand the connection over to raw bytes (RFC 9110 §9.3.6, §7.8)."""
        data, closed = self._h11.trailing_data
        self._phase = _Phase.TUNNEL
        self._paused_size = None
        if self._input_stopped:
            # Bytes were dropped; the tunnel would be corrupt.
            self._terminate(
                HTTP1_ERROR_CODES.enhance_your_calm, self._close_message or ""
            )
            return
        if data:
            self._emit(DataReceived(self._stream_id, data))
        if closed:
            self._tunnel_remote_ended = True
            self._emit(DataReceived(self._stream_id, b"", end_stream=True))
        self._tunnel_check_done()

    def _tunnel_check_done(self) -> None:
        if self._tunnel_local_ended and self._tunnel_remote_ended:
            self._terminate(HTTP1_ERROR_CODES.no_error, "tunnel closed by both sides")
