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

With the h11 releases :mod:`._h11_fast` was checked against, the common
steps (a plain request head on the server, a plain response head, body
pieces, the end of a message, the next cycle) skip h11's event machinery:
the bytes are parsed or written with h11's own patterns and writers, and
h11's state is left as its own call would leave it.  Every other case goes
through h11 as described above.  On the same releases a server waiting for
its next request holds :mod:`._h11_idle`'s parked h11 state, shared by all
idle connections, and takes a connection of its own back when bytes come.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Final, cast

import h11

from hcore._error_codes import HTTP1_ERROR_CODES
from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    TrailersReceived,
)
from hcore.protocols.http1._common import HTTP1Base
from hcore.protocols.http1._h11_fast import (
    FAST_H11,
    buffer_empty,
    end_message,
    send_data,
    start_next_cycle,
    take_body,
)
from hcore.protocols.http1._h11_idle import ParkedConnection, unpark
from hcore.protocols.http1._headers import (
    OutgoingBody,
    plan_trailers,
    received_fields,
)
from hcore.protocols.http1._limits import head_limits

__all__ = ("H11Protocol",)

_COMPLETE = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)
#: The peer's states in which h11, with no bytes buffered, needs more.
_QUIET = (h11.DONE, h11.IDLE)
#: h11's ``trailing_data`` when it holds nothing and the peer's side is open.
_NOTHING_TRAILING = (b"", False)


#: h11's events are immutable: one end of message without trailers serves all.
END_OF_MESSAGE = h11.EndOfMessage()


class _Phase:
    """Where the connection is: exchanging messages, tunnelling, or closed.

    Plain string constants compared by identity, not an ``enum.Enum``: a
    member of one costs a look-up through its metaclass on every access
    (five times a class attribute's), and the phase is asked several times
    a request.
    """

    HTTP: Final = "http"
    TUNNEL: Final = "tunnel"
    CLOSED: Final = "closed"


class H11Protocol(HTTP1Base):
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

    __slots__ = ("_h11", "_max_pipelined_size", "_paused_size", "_phase")

    #: Whether the direct paths of :mod:`._h11_fast` are taken (a class
    #: attribute, so that a test can compare them with h11's own).
    _fast = FAST_H11

    def __init__(
        self,
        *,
        client: bool,
        max_header_size: int,
        max_header_count: int,
        max_pipelined_size: int,
    ) -> None:
        self._init_common()
        self._h11 = h11.Connection(
            h11.CLIENT if client else h11.SERVER,
            max_incomplete_event_size=max_header_size,
        )
        self._limits = head_limits(max_header_size, max_header_count)
        self._max_pipelined_size = max_pipelined_size
        self._phase = _Phase.HTTP
        #: The body of the message this side is sending, once its head went.
        self._sending: OutgoingBody | None = None
        self._eof = False
        #: The peer sent too much ahead; further bytes are dropped.
        self._input_stopped = False
        #: Bytes h11 holds while paused, when it is paused.
        self._paused_size: int | None = None

    # -- HTTPProtocol ---------------------------------------------------------

    def has_expired(self) -> bool:
        """Whether the connection is over.

        True once :class:`~hcore.events.ConnectionTerminated` was queued.  An
        exchange that is the last one (``Connection: close``,
        :meth:`submit_close`) still runs to its end first, so the I/O layer,
        which closes expired connections, does not cut it short;
        :meth:`is_available` is false meanwhile.
        """
        return self._phase is _Phase.CLOSED

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
            self._send_tunnelled(stream_id, data, end_stream)
            return
        body = self._sending
        if stream_id != self._stream_id or body is None:
            self._data_without_body(stream_id, data, end_stream)
            return
        body.check(len(data), end_stream)
        if data and not (self._fast and send_data(self._h11, data, self._outgoing)):
            self._send(h11.Data(data=data))
        if end_stream:
            self._send_end()
        body.consume(len(data), end_stream)
        if end_stream and self._after_step():
            self._receive_next()

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
        conn = self._h11
        if type(conn) is ParkedConnection:
            conn = self._h11 = unpark(conn)
        conn.receive_data(data)
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
        conn = self._h11
        if type(conn) is ParkedConnection:
            conn = self._h11 = unpark(conn)
        conn.receive_data(b"")
        if self._paused_size is None:
            self._receive()

    # -- role-specific parts ---------------------------------------------------

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

    def _in_tunnel(self) -> bool:
        return self._phase is _Phase.TUNNEL

    def _mid_exchange(self) -> bool:
        return self._exchange_open() or bool(self._h11.trailing_data[0])

    # -- machinery -------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._phase is _Phase.CLOSED:
            raise LocalProtocolError("the connection is closed")

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

    def _send_end(self) -> None:
        """End the message this side is sending, without trailers."""
        if not (self._fast and end_message(self._h11, self._outgoing)):
            self._send(END_OF_MESSAGE)

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
            self._receive_next()

    def _terminate(self, code: int, message: str) -> None:
        if self._phase is _Phase.CLOSED:
            return
        self._phase = _Phase.CLOSED
        self._paused_size = None
        self._emit(ConnectionTerminated(code, message))

    def _receive(self) -> None:
        """Turn what h11 can parse now into events."""
        self._paused_size = None
        conn = self._h11
        while (
            self._phase is _Phase.HTTP
            # After ConnectionClosed h11 has nothing more to say.
            and conn.their_state is not h11.CLOSED
            and self._may_parse()
        ):
            piece = take_body(conn) if self._fast else None
            if piece is not None:
                data, ended = piece
                if not ended:
                    self._emit(DataReceived(self._stream_id, data))
                    continue
                event: h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED] = (
                    END_OF_MESSAGE
                )
            else:
                try:
                    event = conn.next_event()
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
            # Exact types: h11's event classes are final, and isinstance on
            # its abstract base class takes a slow path for every miss.
            kind = type(event)
            if kind is h11.Data:
                # h11 hands out a fresh bytearray slice of its buffer: the
                # event's data must be immutable bytes, so this copy stays
                # (handing the bytearray on measured slower, not faster).
                data = cast(h11.Data, event).data
                self._emit(DataReceived(self._stream_id, bytes(data)))
            elif kind is h11.EndOfMessage:
                self._received_end(cast(h11.EndOfMessage, event))
                if (
                    self._phase is _Phase.HTTP
                    and conn.their_state in _QUIET
                    and self._nothing_trailing()
                ):
                    # Nothing buffered after the message, peer's side open:
                    # h11 could only say NEED_DATA, so it is not asked.
                    return
            elif kind is h11.ConnectionClosed:
                # h11 repeats ConnectionClosed forever: stop here.  What is
                # left to do happens when this side's message is complete.
                self._after_step()
                return
            else:
                self._received_head(cast(h11.Event, event))

    def _receive_next(self) -> None:
        """A new exchange began: parse what the peer sent ahead, if anything.

        With nothing buffered and the peer's side open, h11 could only say
        NEED_DATA, so it is not asked.
        """
        if self._nothing_trailing():
            self._paused_size = None
        else:
            self._receive()

    def _nothing_trailing(self) -> bool:
        """Whether h11 holds no bytes and the peer's side is open."""
        if self._fast:
            return buffer_empty(self._h11)
        return self._h11.trailing_data == _NOTHING_TRAILING

    def _received_end(self, event: h11.EndOfMessage) -> None:
        # The shared end without trailers is known without asking h11's
        # Headers whether it is empty.
        if event is not END_OF_MESSAGE and event.headers:
            trailers = received_fields(event.headers)
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
            if self._fast:
                start_next_cycle(self._h11)
            else:
                self._h11.start_next_cycle()
            self._stream_id += 2
            self._sending = None
            self._new_cycle()
            return True
        if request in _COMPLETE or not reusable:
            self._end_after_exchange(h11.CLOSED in (response, request))
        return False

    def _paused(self) -> None:
        """h11 holds bytes the peer sent past its current message; bound them."""
        self._paused_size = len(self._h11.trailing_data[0])
        self._check_paused_size()

    def _check_paused_size(self) -> None:
        if self._paused_size is None or self._paused_size <= self._max_pipelined_size:
            return
        self._paused_size = None
        self._stop_reading(self._max_pipelined_size)

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
