"""The client side of HTTP/1.1 on httptools (llhttp).

Theory of operation
===================

llhttp parses eagerly and decides a response's framing from its fields
alone; it cannot be told that a response has no body (an answer to HEAD, a
2xx to CONNECT), and the client knows more than it does.  So the protocol
feeds it one response *head* at a time and frames the body itself:

* While a head is awaited the input is scanned for the empty line ending it
  (RFC 9112 §2.1; llhttp refuses bare LF line ends, so CRLF CRLF is the only
  end).  Only the head is fed to a fresh parser; ``on_headers_complete``
  checks the head the way h11 does and decides what follows
  (RFC 9112 §6.3): nothing (1xx, 204, 304, HEAD, a switch), a body llhttp
  frames (``Content-Length``, chunked), or a body read until the connection
  closes, which llhttp cannot end (httptools has no ``finish``), so
  :meth:`eof_received` ends it.  When nothing follows the head the parser
  is stopped (:class:`Halt`) and the next head gets a new one.
* A 101 answering an ``Upgrade`` request, or a 2xx answering CONNECT, turns
  the connection into a tunnel; what followed the head is its first bytes
  (RFC 9110 §7.8, §9.3.6).
* Body bytes reach ``on_body`` as ``bytes`` sliced once from the input,
  which become :class:`~hcore.events.DataReceived` as they are: the one copy
  of the receive path.
* One request at a time: anything the server sends while no request is
  outstanding, or after its complete response, ends the connection, as on
  :class:`~hcore.protocols.http1.H11ClientProtocol`, whose events, checks
  and messages this protocol repeats.

Requests are planned and checked by the helpers the h11 protocol uses
(``_headers.py``, the same bytes on the wire) and written here.  Every way
to the end goes through :meth:`_terminate`, which queues one
:class:`~hcore.events.ConnectionTerminated`.
"""

from __future__ import annotations

from typing import NoReturn

import httptools

from hcore._error_codes import HTTP1_ERROR_CODES
from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.events import (
    DataReceived,
    HeadersReceived,
    InformationalResponseReceived,
    TrailersReceived,
)
from hcore.protocols.http1._common import tokens
from hcore.protocols.http1._headers import proposes_upgrade
from hcore.protocols.http1._httptools_base import Halt
from hcore.protocols.http1._httptools_exchange import ClientExchange
from hcore.protocols.http1._httptools_writer import head_fields, request_head
from hcore.protocols.http1._limits import (
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
)
from hcore.protocols.http1._request_memo import RequestMemo, repeatable

__all__ = ("HTTPToolsClientProtocol",)

_END_OF_HEAD = b"\r\n\r\n"


class HTTPToolsClientProtocol(ClientExchange):
    """The client end of an HTTP/1.1 connection, parsed by llhttp.

    Events, checks, limits and their defaults are those of
    :class:`~hcore.protocols.http1.H11ClientProtocol`; llhttp is stricter
    in a few places h11 tolerates (obsolete line folding, bare LF line ends,
    ``Content-Length`` together with ``Transfer-Encoding``, a repeated
    ``Content-Length``, versions other than 1.0 and 1.1), which end the
    connection as bad input, and skips empty lines between a response and
    what follows it.  The parser's callbacks (``on_status``, ``on_header``,
    ...) are methods of the protocol; they are not for applications.

    :param max_header_size: largest response head accepted, in bytes.
    :param max_header_count: most fields accepted in a head or trailers.
    """

    __slots__ = (
        "_fields",
        "_halting",
        "_memo",
        "_parser",
        "_reason",
        "_tail",
        "_trailer_size",
    )

    def __init__(
        self,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
    ) -> None:
        super().__init__(
            max_header_size=max_header_size, max_header_count=max_header_count
        )
        self._parser: httptools.HttpResponseParser | None = None
        #: Up to three bytes of the head fed so far (its end may straddle).
        self._tail = b""
        self._reason = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._trailer_size = 0
        #: A callback stopped llhttp on purpose.
        self._halting = False
        #: The last request head planned, for a request that repeats it.
        self._memo: RequestMemo | None = None

    # -- HTTPProtocol: submitting --------------------------------------------

    def submit_headers(
        self, stream_id: int, headers: Headers, end_stream: bool = False
    ) -> None:
        """Send a request, or trailers to end the request body.

        :raises LocalProtocolError: if ``stream_id`` is not the available
            one, the connection is busy, or the block is malformed.
        """
        self._check_usable()
        if not self._tunnel and self._request_state == 0:
            if stream_id != self._stream_id:
                raise LocalProtocolError(
                    f"the next request goes on stream {self._stream_id}, "
                    f"not {stream_id}"
                )
            memo = self._memo
            if memo is None or not memo.matches(headers, end_stream):
                memo = self._plan(headers, end_stream)
            body = memo.new_body()
            if body is not None:
                body.check(0, end_stream)
            if memo is not self._memo and repeatable(headers):
                # Checked whole: kept for the next request.
                self._memo = memo
            assert memo.head is not None
            self._outgoing.append(memo.head)
            self._start_exchange(memo.method, upgrade=memo.upgrade, close=memo.close)
            if body is None:
                # CONNECT or Upgrade: no content; what follows the head is
                # the tunnel, if the server agrees.
                self._request_state = 2
                self._proposed_tunnel = True
                self._tunnel_local_ended = end_stream
            elif end_stream:
                self._request_state = 2
                body.consume(0, True)
            self._sending = body
            return
        if (
            not self._tunnel
            and stream_id == self._stream_id
            and self._sending is not None
        ):
            self._submit_trailers(self._sending, headers, end_stream)
            return
        raise LocalProtocolError(f"stream {stream_id} cannot send headers now")

    def _plan(self, headers: Headers, end_stream: bool) -> RequestMemo:
        """Plan, check and write a request head; for :attr:`_memo`.

        :raises LocalProtocolError: if the block is not a valid request.
        """
        method, target, fields, body = request_head(headers, end_stream)
        memo = RequestMemo(headers, end_stream, method, target, fields, body)
        memo.head = b"%s %s HTTP/1.1\r\n" % (method, target) + head_fields(fields)
        memo.upgrade = proposes_upgrade(fields)
        memo.close = any(
            b"close" in tokens(value)
            for name, value in fields
            if name.lower() == b"connection"
        )
        return memo

    # -- receiving ---------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Run the parser on bytes from the peer, one head at a time."""
        view: memoryview | bytes = data
        while view and not self._closed and not self._tunnel:
            if self._request_state == 0 or self._response_done:
                self._unexpected_input()
                return
            if not self._in_head:
                self._run(view)
                return
            tail = self._tail
            end = (tail + bytes(view[:3])).find(_END_OF_HEAD) if tail else -1
            if end >= 0:
                end += 4 - len(tail)
            else:
                end = data.find(_END_OF_HEAD, len(data) - len(view))
                if end >= 0:
                    end += 4 - (len(data) - len(view))
            if end < 0:
                self._head_size += len(view)
                if self._head_size > self._limits.max_size:
                    self._fail(431, "Receive buffer too long")
                    return
                self._tail = bytes((tail + bytes(view[-3:]))[-3:])
                self._run(view)
                return
            if type(view) is bytes:
                view = memoryview(view)
            # The head's whole size while its callbacks run (see
            # on_headers_complete), then 0 for the next head.
            self._head_size += end
            self._tail = b""
            self._run(view[:end])
            self._head_size = 0
            view = view[end:]
        if view and self._tunnel and not self._closed:
            self._emit(DataReceived(self._stream_id, bytes(view)))

    def _run(self, data: memoryview | bytes) -> None:
        parser = self._parser
        if parser is None:
            parser = self._parser = httptools.HttpResponseParser(self)
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._halting:
                self._halting = False
                return
            if self._closed:
                # Input after the last response, which is ignored.
                return
            self._fail(400, str(exc) or type(exc).__name__)

    def _unexpected_input(self) -> None:
        if self._request_state == 0:
            # RFC 9112 §9.3: responses answer requests, in order; a server
            # has nothing to say while none is outstanding.
            message = "the server sent data while no request was outstanding"
        else:
            message = "the server sent data after its response"
        self._terminate(HTTP1_ERROR_CODES.protocol_error, message)

    def _halt(self) -> NoReturn:
        """Stop llhttp from a callback; the next head gets a new parser."""
        self._parser = None
        self._halting = True
        raise Halt

    def _fail(self, code: int, message: str) -> None:
        # Input is not fed after the peer's close, so no "mid-message" here.
        self._terminate(code, message)

    # -- llhttp callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        """llhttp: a response begins."""
        if not self._in_head:
            # More after the complete response, in the same bytes.
            if not self._closed:
                self._unexpected_input()
            self._halt()
        self._reason = b""
        self._fields = []

    def on_status(self, status: bytes) -> None:
        """llhttp: a piece of the reason phrase."""
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        """llhttp: a field of the head or of the trailers."""
        if value[-1:] in (b" ", b"\t"):
            # RFC 9110 §5.5: trailing whitespace is not part of the value.
            value = value.rstrip(b" \t")
        self._fields.append((name.lower(), value))
        if not self._in_head:
            self._trailer_size += len(name) + len(value) + 4
            if self._trailer_size > self._limits.max_size:
                self._fail(431, "Receive buffer too long")
                self._halt()

    def on_headers_complete(self) -> None:
        """llhttp: the head is complete; check it and decide what follows."""
        parser = self._parser
        assert parser is not None
        status: int = parser.get_status_code()
        fields = self._fields
        self._fields = []
        limits = self._limits
        count = len(fields)
        head = self._head_size
        if not head or count > limits.max_count or head + 3 + count > limits.max_size:
            # Else within the bounds for sure: the check's estimate (15
            # bytes and the reason for the status line, 4 and the name and
            # value for a field, 4 for the CRLFs) is at most the head's size
            # on the wire, plus 3 and 1 per field.
            complaint = limits.check(len(self._reason) + 15, fields)
            if complaint is not None:
                self._fail(431, complaint)
                self._halt()
        codings: list[bytes] = []
        length = close = False
        for name, value in fields:
            if name == b"transfer-encoding":
                codings.append(value.lower())
            elif name == b"content-length":
                length = True
            elif name == b"connection" and b"close" in value.lower():
                # A "close" token needs "close" in the value.
                close = close or b"close" in tokens(value)
        if len(codings) > 1:
            self._fail(501, "multiple Transfer-Encoding headers")
            self._halt()
        if codings:
            if codings != [b"chunked"]:
                self._fail(501, "Only Transfer-Encoding: chunked is supported")
                self._halt()
            # As h11 reports it: the coding in lower case.
            fields = [
                (name, b"chunked" if name == b"transfer-encoding" else value)
                for name, value in fields
            ]
        block = ((b":status", b"%d" % status), *fields)
        if status == 101:
            if not self._proposed_upgrade:
                self._fail(
                    400,
                    "Received server _SWITCH_UPGRADE event without a pending proposal",
                )
                self._halt()
            self._emit(HeadersReceived(self._stream_id, block))
            self._tunnel = True
            self._halt()
        if status < 200:
            self._emit(InformationalResponseReceived(self._stream_id, block))
            self._halt()
        method = self._method
        if method == b"CONNECT" and status < 300:
            self._emit(HeadersReceived(self._stream_id, block))
            self._tunnel = True
            self._halt()
        self._in_head = False
        version: str = parser.get_http_version()
        # RFC 9112 §9.3: HTTP/1.0 (as h11 reads it) and "close" end reuse.
        self._keep_alive = self._keep_alive and version >= "1.1" and not close
        if status in (204, 304) or method == b"HEAD":
            # RFC 9110 §6.4.1: no content, whatever the fields say.
            self._emit(HeadersReceived(self._stream_id, block, True))
            self._response_complete()
            self._halt()
        self._emit(HeadersReceived(self._stream_id, block))
        self._trailer_size = 0
        if not codings and not length:
            # RFC 9112 §6.3: read until the connection closes.
            self._until_close = True
            self._keep_alive = False

    def on_body(self, body: bytes) -> None:
        """llhttp: a piece of the response body."""
        self._emit(DataReceived(self._stream_id, body))

    def on_message_complete(self) -> None:
        """llhttp: the response (with its trailers, if any) is complete."""
        trailers = self._fields
        if trailers:
            self._fields = []
            complaint = self._limits.check(0, trailers)
            if complaint is not None:
                self._fail(431, f"trailers: {complaint}")
                self._halt()
            self._emit(TrailersReceived(self._stream_id, tuple(trailers)))
        else:
            self._emit_end()
        self._response_complete()

    def _end_until_close(self) -> bool:
        """The peer closed: end a body read until then, if that is the one."""
        if self._in_head or not self._until_close or self._response_done:
            return False
        self._emit_end()
        self._response_complete()
        return True
