"""The client side of HTTP/1.1 on h11."""

from __future__ import annotations

from typing import cast

import h11
from h11._readers import ContentLengthReader
from h11._state import CLIENT, IDLE, SERVER

from hcore._error_codes import HTTP1_ERROR_CODES
from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.events import DataReceived, HeadersReceived, InformationalResponseReceived
from hcore.protocols.http1._h11_fast import buffer_empty, take_body
from hcore.protocols.http1._h11_fast_client import (
    body_writer,
    commit_ended_request,
    commit_request,
    plain_request_state,
    request_shape,
    take_response,
    take_response_from,
)
from hcore.protocols.http1._headers import (
    plan_request_head,
    received_fields,
    request_event,
)
from hcore.protocols.http1._limits import (
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
)
from hcore.protocols.http1._protocol import END_OF_MESSAGE, H11Protocol, _Phase
from hcore.protocols.http1._request_memo import RequestMemo, repeatable
from hcore.protocols.http1._roles import ClientRole

__all__ = ("H11ClientProtocol",)


class H11ClientProtocol(ClientRole, H11Protocol):
    """The client end of an HTTP/1.1 connection.

    One request at a time (no pipelining): :meth:`is_available` is true
    between exchanges, and each request opens the stream
    :meth:`get_available_stream_id` names, 1, 3, 5, ...

    Requests are written from the pseudo-headers: ``:method`` and ``:path``
    make the request line (an absolute URI in ``:path`` is sent as it is, for
    forward proxies; CONNECT sends ``:authority``), ``:authority`` becomes
    ``Host``.  A request left open without ``Content-Length`` is sent chunked,
    except CONNECT and ``Upgrade`` requests, whose open side waits for the
    tunnel.  Responses come with ``:status`` first; 1xx other than 101 as
    :class:`~hcore.events.InformationalResponseReceived`.

    :param max_header_size: largest response head accepted, in bytes.
    :param max_header_count: most fields accepted in a head or trailers.
    """

    __slots__ = ("_dangling", "_memo", "_proposed_tunnel")

    def __init__(
        self,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
    ) -> None:
        super().__init__(
            client=True,
            max_header_size=max_header_size,
            max_header_count=max_header_count,
            # A client never holds bytes ahead: its _paused treats them as an
            # error.
            max_pipelined_size=0,
        )
        #: The request proposed a tunnel (CONNECT, Upgrade); its head was the
        #: whole request on the wire.
        self._proposed_tunnel = False
        #: An earlier exchange whose request side the caller left open after
        #: the tunnel was refused; ending it is accepted and does nothing.
        self._dangling: int | None = None
        #: The last request head planned, for a request that repeats it.
        self._memo: RequestMemo | None = None

    def is_available(self) -> bool:
        """Whether a request can be sent now: connection idle and not closing."""
        if self._phase is not _Phase.HTTP or self._closing:
            return False
        if self._fast:
            # h11's our_state and their_state, without their property calls
            # (the I/O layer and the pool ask several times a request).
            states = self._h11._cstate.states
            return states[CLIENT] is IDLE and states[SERVER] is IDLE
        return self._h11.our_state is h11.IDLE and self._h11.their_state is h11.IDLE

    def submit_headers(
        self, stream_id: int, headers: Headers, end_stream: bool = False
    ) -> None:
        """Send a request, or trailers to end the request body.

        :raises LocalProtocolError: if ``stream_id`` is not the available
            one, the connection is busy, or the block is malformed.
        """
        self._check_usable()
        conn = self._h11
        # our_state, without its property call where h11's states are known.
        ours = conn._cstate.states[CLIENT] if self._fast else conn.our_state
        if self._phase is _Phase.HTTP and ours is h11.IDLE:
            if stream_id != self._stream_id:
                raise LocalProtocolError(
                    f"the next request goes on stream {self._stream_id}, "
                    f"not {stream_id}"
                )
            memo = self._memo
            if memo is None or not memo.matches(headers, end_stream):
                memo = self._plan(headers, end_stream)
            method = memo.method
            body = memo.new_body()
            head = memo.head
            if head is not None and not plain_request_state(self._h11):
                head = None
            if head is None:
                # h11's complaint about the event it is asked to build is ours.
                request = request_event(method, memo.target, memo.fields)
            if body is not None:
                body.check(0, end_stream)
            if memo is not self._memo and repeatable(headers):
                # Checked whole: kept for the next request.
                self._memo = memo
            if head is not None:
                assert body is not None
                self._outgoing.append(head)
                if end_stream and not memo.chunked:
                    # No body (checked above): the request and its end in
                    # one step, as _send_end below would end it.
                    commit_ended_request(conn, method)
                    body.consume(0, True)
                    self._sending = body
                    return
                commit_request(conn, method, body_writer(memo.chunked, body))
            else:
                self._send(request)
            if body is None:
                # CONNECT or Upgrade: no content; what follows the head is
                # the tunnel, if the server agrees.
                self._send(END_OF_MESSAGE)
                self._proposed_tunnel = True
                self._tunnel_local_ended = end_stream
            elif end_stream:
                self._send_end()
                body.consume(0, True)
            self._sending = body
            return
        if (
            self._phase is _Phase.HTTP
            and stream_id == self._stream_id
            and self._sending is not None
        ):
            self._submit_trailers(self._sending, headers, end_stream)
            return
        raise LocalProtocolError(f"stream {stream_id} cannot send headers now")

    def _plan(self, headers: Headers, end_stream: bool) -> RequestMemo:
        """Plan a request head (and write it, when plain); for :attr:`_memo`.

        :raises LocalProtocolError: if the block is not a valid request.
        """
        method, target, fields, body = plan_request_head(headers, end_stream)
        memo = RequestMemo(headers, end_stream, method, target, fields, body)
        if self._fast and body is not None:
            shape = request_shape(method, target, fields, body.framing)
            if shape is not None:
                memo.head, memo.chunked = shape
        return memo

    # -- receiving -------------------------------------------------------------

    def bytes_received(self, data: bytes) -> None:
        """Feed bytes from the peer; bad input becomes events, never raises."""
        if (
            self._fast
            and type(data) is bytes
            and data
            and self._phase is _Phase.HTTP
            and not self._eof
            and not self._input_stopped
            and self._paused_size is None
            and self._direct(data)
        ):
            return
        super().bytes_received(data)

    def _direct(self, data: bytes) -> bool:
        """Take a plain response head, or a piece of its body, from ``data``.

        What feeding ``data`` to h11 and parsing it would do (see
        :func:`take_response_from`), while h11 holds no bytes: the head and
        the body are read from ``data``, and what follows the body (which
        h11 would hold) is handed to h11.

        :return: whether ``data`` was taken (else nothing changed).
        """
        conn = self._h11
        reader = conn._reader
        if type(reader) is ContentLengthReader:
            # More of a body: as take_body would read it from h11's buffer.
            if not reader._remaining or not buffer_empty(conn):
                return False
            offset = 0
        else:
            taken = take_response_from(conn, data)
            if taken is None:
                return False
            status, code, reason, fields, offset = taken
            limits = self._limits
            count = len(fields)
            if count <= limits.max_count and offset + 3 + count <= limits.max_size:
                # Within the bounds for sure: HeadLimits.check's estimate of
                # a head (15 bytes and the reason for the status line, 4 and
                # the name and value for a field, 4 for the CRLFs) is at
                # most its size on the wire, plus 3 and 1 per field.
                block = ((b":status", code), *fields)
                self._emit(HeadersReceived(self._stream_id, block))
            else:
                self._response_head(status, reason, fields, interim=False)
            if self._phase is not _Phase.HTTP:
                # Refused: h11 keeps the rest, as it would have.
                if offset < len(data):
                    conn.receive_data(data[offset:])
                return True
            reader = cast(ContentLengthReader, conn._reader)
            if offset == len(data):
                if reader._remaining:
                    # The body comes later.
                    return True
                return self._end_direct()
        remaining = reader._remaining
        end = offset + remaining
        piece = data[offset:end] if offset or end < len(data) else data
        if piece:
            reader._remaining = remaining - len(piece)
            self._emit(DataReceived(self._stream_id, piece))
        if end < len(data):
            # Bytes past the body: h11 holds them, and they are parsed
            # (as the server's error) the usual way.
            conn.receive_data(data[end:])
            H11Protocol._receive(self)
            return True
        if reader._remaining:
            # h11 would say NEED_DATA, with nothing to change.
            return True
        return self._end_direct()

    def _end_direct(self) -> bool:
        """The body taken directly is complete: end the message, as h11 would."""
        if take_body(self._h11) is None:
            # A state in which the end triggers more: h11 reads it.
            H11Protocol._receive(self)
        else:
            self._received_end(END_OF_MESSAGE)
        return True

    # -- role-specific parts ---------------------------------------------------

    def _exchange_open(self) -> bool:
        return self._phase is _Phase.TUNNEL or self._h11.our_state is not h11.IDLE

    def _exchange_states(self) -> tuple[object, object]:
        if self._fast:
            states = self._h11._cstate.states
            return states[SERVER], states[CLIENT]
        return self._h11.their_state, self._h11.our_state

    def _may_parse(self) -> bool:
        if self._h11.our_state is h11.IDLE and self._h11.trailing_data[0]:
            # RFC 9112 §9.3: responses answer requests, in order; a server
            # has nothing to say while none is outstanding.
            self._terminate(
                HTTP1_ERROR_CODES.protocol_error,
                "the server sent data while no request was outstanding",
            )
            return False
        return True

    def _paused(self) -> None:
        # The response is complete and more bytes came: there is no request
        # they could answer.
        self._terminate(
            HTTP1_ERROR_CODES.protocol_error, "the server sent data after its response"
        )

    def _receive(self) -> None:
        """Take a plain response head directly, then go on as h11 would."""
        if self._fast and self._phase is _Phase.HTTP:
            head = take_response(self._h11)
            if head is not None:
                self._paused_size = None
                self._response_head(*head, interim=False)
        super()._receive()

    def _received_head(self, event: h11.Event) -> None:
        # A client receives no other head (a cast: isinstance on h11's
        # abstract event classes is slow).
        event = cast(h11.Response | h11.InformationalResponse, event)
        self._response_head(
            event.status_code,
            event.reason,
            received_fields(event.headers),
            interim=type(event) is h11.InformationalResponse,
        )

    def _response_head(
        self,
        status: int,
        reason: bytes,
        fields: list[tuple[bytes, bytes]],
        *,
        interim: bool,
    ) -> None:
        """Check a response head and emit it; refuse it if it is too large.

        :param fields: the fields, names lower-case.
        :param interim: a 1xx response.
        """
        complaint = self._limits.check(len(reason) + 15, fields)
        if complaint is not None:
            self._receive_failed(431, complaint)
            return
        block = ((b":status", b"%d" % status), *fields)
        if interim and status != 101:
            self._emit(InformationalResponseReceived(self._stream_id, block))
        else:
            self._emit(HeadersReceived(self._stream_id, block))

    def _receive_failed(self, code: int, message: str) -> None:
        self._terminate(code, message)

    def _message_ended(self) -> None:
        self._emit_end()

    def _new_cycle(self) -> None:
        if self._proposed_tunnel and not self._tunnel_local_ended:
            self._dangling = self._stream_id - 2
        self._proposed_tunnel = False
        self._tunnel_local_ended = False
