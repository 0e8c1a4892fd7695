"""The server side of HTTP/1.1 on h11."""

from __future__ import annotations

from http import HTTPStatus
from typing import cast

import h11

from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.events import HeadersReceived
from hcore.protocols.http1._h11_fast import (
    WrittenHead,
    body_writer,
    buffer_empty,
    commit_response,
    end_request,
    response_allowed,
    response_head,
)
from hcore.protocols.http1._h11_fast_server import take_request, take_request_from
from hcore.protocols.http1._h11_idle import ParkedConnection, park, unpark
from hcore.protocols.http1._headers import (
    BadMessage,
    OutgoingBody,
    plan_response_head,
    proposes_upgrade,
    received_fields,
    request_block,
    response_event,
    scheme_bytes,
)
from hcore.protocols.http1._limits import (
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_PIPELINED_SIZE,
)
from hcore.protocols.http1._protocol import END_OF_MESSAGE, H11Protocol, _Phase
from hcore.protocols.http1._response_memo import KnownHead, ResponseMemo, plain_method
from hcore.protocols.http1._roles import ServerRole
from hcore.protocols.http1._strict import check_request_head

__all__ = ("H11ServerProtocol",)

# The heads this implementation wrote directly (see _response_memo).
_MEMO = ResponseMemo()


class H11ServerProtocol(ServerRole, H11Protocol):
    """The server end of an HTTP/1.1 connection.

    Each request arrives as :class:`~hcore.events.HeadersReceived` on the
    next stream id (1, 3, 5, ...) with ``:method``, ``:scheme``,
    ``:authority`` (from ``Host``, or from an absolute-form target) and
    ``:path`` first; a CONNECT request has ``:method`` and ``:authority``
    only.  Requests pipelined by the client wait in h11's buffer, at most
    ``max_pipelined_size`` bytes, and are handed out one by one as responses
    complete.  When that bound is passed the server stops reading, ends the
    current exchange with ``Connection: close`` and then the connection,
    with :class:`~hcore.events.ConnectionTerminated` ``error_code=429``.

    A request that cannot be parsed, or that :mod:`._strict` refuses as a
    smuggling risk, is answered with 400 (431 when the head is too large or
    has too many fields, 505 for a version other than 1.x) and
    ``Connection: close``, and the connection ends with that status as the
    error code.  HTTP/1.0 clients get one
    exchange per connection (h11 does not keep HTTP/1.0 connections alive)
    and close-delimited bodies when no ``Content-Length`` is given.

    :param scheme: ``:scheme`` of received requests (``"https"`` over TLS).
    :param max_header_size: largest request head accepted, in bytes.
    :param max_header_count: most fields accepted in a head or trailers.
    :param max_pipelined_size: most bytes held that the client sent ahead of
        the current exchange.
    """

    __slots__ = (
        "_end_deferred",
        "_peer_version",
        "_request_method",
        "_request_seen",
        "_request_upgrade",
        "_scheme",
    )

    def __init__(
        self,
        *,
        scheme: str = "http",
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
        max_pipelined_size: int = DEFAULT_MAX_PIPELINED_SIZE,
    ) -> None:
        super().__init__(
            client=False,
            max_header_size=max_header_size,
            max_header_count=max_header_count,
            max_pipelined_size=max_pipelined_size,
        )
        self._scheme = scheme_bytes(scheme)
        self._request_seen = False
        self._request_method = b""
        self._request_upgrade = False
        self._peer_version = b"1.1"
        #: The request proposed a switch and ended; whether it ended for good
        #: depends on the answer.
        self._end_deferred = False

    def submit_headers(
        self, stream_id: int, headers: Headers, end_stream: bool = False
    ) -> None:
        """Send an interim (1xx) or final response, or trailers.

        A 101 may answer a complete ``Upgrade`` request and a 2xx a CONNECT;
        the stream then carries raw bytes both ways.  Without
        ``Content-Length`` a final response is sent chunked (close-delimited
        to an HTTP/1.0 client), or with ``Content-Length: 0`` when it ends
        here.

        :raises LocalProtocolError: if ``stream_id`` has no request waiting
            for this block, or the block is malformed.
        """
        self._check_usable()
        if (
            self._phase is not _Phase.HTTP
            or stream_id != self._stream_id
            or not self._request_seen
        ):
            raise LocalProtocolError(f"stream {stream_id} cannot send headers now")
        if self._sending is not None:
            self._submit_trailers(self._sending, headers, end_stream)
            return
        plain = self._fast and not self._closing and plain_method(self._request_method)
        if plain:
            # A head written before for an equal block (see _response_memo).
            known = _MEMO.recall(headers, end_stream)
            if known is not None and response_allowed(self._h11):
                commit_response(self._h11, body_writer(known.framing, known.length))
                self._outgoing.append(known.head)
                self._response_begun(known.new_body(), end_stream)
                return
        status, reason, fields, body = plan_response_head(
            headers,
            end_stream,
            request_method=self._request_method,
            peer_version=self._peer_version,
            close=self._closing,
        )
        direct: WrittenHead | None = None
        if self._fast and body is not None:
            direct = response_head(self._h11, status, reason, fields, body)
        if direct is None:
            # h11's complaint about the event it is asked to build is ours.
            response = response_event(status, reason, fields, interim=body is None)
        switching = self._switching(status)
        if body is not None:
            body.check(0, end_stream and not switching)
        if direct is not None:
            head, writer = direct
            commit_response(self._h11, writer)
            self._outgoing.append(head)
            if plain and body is not None and not switching:
                _MEMO.keep(headers, end_stream, KnownHead(head, body))
        else:
            self._send(response)
        if switching:
            # RFC 9110 §7.8, §9.3.6: the connection now carries the tunnel.
            self._tunnel_local_ended = end_stream
            self._receive()
            return
        if body is not None:
            self._response_begun(body, end_stream)

    def _response_begun(self, body: OutgoingBody, end_stream: bool) -> None:
        """After a final response head went out: its body, maybe its end."""
        self._sending = body
        if self._end_deferred:
            # The switch was refused: the request really is complete.
            self._end_deferred = False
            self._emit_end()
        if end_stream:
            self._send_end()
            body.consume(0, True)
            if self._after_step():
                self._receive_next()

    # -- role-specific parts ---------------------------------------------------

    def _exchange_open(self) -> bool:
        return self._phase is _Phase.TUNNEL or self._request_seen

    def _exchange_states(self) -> tuple[object, object]:
        return self._h11.our_state, self._h11.their_state

    def _may_parse(self) -> bool:
        return True

    def bytes_received(self, data: bytes) -> None:
        """Feed bytes from the peer; bad input becomes events, never raises.

        A plain request head that arrives whole while h11 holds no bytes is
        parsed from ``data`` itself (:func:`take_request_from`), which
        leaves h11 as feeding ``data`` and taking the head from its buffer
        would; anything else goes the usual way.
        """
        if (
            self._fast
            and type(data) is bytes
            and self._phase is _Phase.HTTP
            and not self._eof
            and not self._input_stopped
            and self._paused_size is None
        ):
            conn = self._h11
            if type(conn) is ParkedConnection:
                # An idle connection takes its own h11 back first.
                conn = self._h11 = unpark(conn)
            head = take_request_from(conn, data)
            if head is not None:
                method, target, fields, length, offset = head
                if offset < len(data):
                    # What h11's buffer would hold after the head: the body
                    # and any request sent ahead.
                    conn.receive_data(data[offset:])
                if not self._take_head(method, target, fields, length):
                    super()._receive()
                return
        super().bytes_received(data)

    def _receive(self) -> None:
        """Take a plain request head directly, then go on as h11 would."""
        if self._fast and self._phase is _Phase.HTTP:
            head = take_request(self._h11)
            if head is not None and self._take_head(*head):
                return
        super()._receive()

    def _take_head(
        self,
        method: bytes,
        target: bytes,
        fields: list[tuple[bytes, bytes]],
        length: int,
    ) -> bool:
        """Handle a request head taken directly (h11's state moved already).

        :param length: its Content-Length (0 without one).
        :return: whether h11 has nothing more to read now (else the caller
            goes on as :meth:`H11Protocol._receive`).
        """
        self._paused_size = None
        # The direct takes pass no Upgrade field on.
        if not self._request_head(method, target, b"1.1", fields, upgrade=False):
            return True
        if length:
            return False
        # The request has no content: h11 would read its end at once.
        conn = self._h11
        end_request(conn)
        self._received_end(END_OF_MESSAGE)
        return self._phase is _Phase.HTTP and buffer_empty(conn)

    def _receive_next(self) -> None:
        super()._receive_next()
        if self._fast and self._phase is _Phase.HTTP:
            # Unless bytes sent ahead began the next request, h11's state is
            # now every idle connection's: share it while waiting (see
            # _h11_idle; bytes_received takes a connection back first).
            parked = park(self._h11)
            if parked is not None:
                self._h11 = parked

    def _received_head(self, event: h11.Event) -> None:
        # A server receives no other head (a cast: isinstance on h11's
        # abstract event classes is slow).
        request = cast(h11.Request, event)
        self._request_head(
            request.method,
            request.target,
            request.http_version,
            received_fields(request.headers),
        )

    def _request_head(
        self,
        method: bytes,
        target: bytes,
        version: bytes,
        fields: list[tuple[bytes, bytes]],
        upgrade: bool | None = None,
    ) -> bool:
        """Check a request head and emit it; refuse it if it is bad.

        :param fields: the fields, names lower-case.
        :param upgrade: whether they propose an Upgrade, when known.
        :return: whether the request was accepted.
        """
        # Known before any refusal: the answer to a HEAD has no body.
        self._request_method = method
        complaint = self._limits.check(len(method) + len(target) + 11, fields)
        if complaint is not None:
            self._receive_failed(431, complaint)
            return False
        refusal = check_request_head(target, version, fields)
        if refusal is not None:
            self._receive_failed(*refusal)
            return False
        try:
            block = request_block(method, target, fields, self._scheme)
        except BadMessage as exc:
            self._receive_failed(400, str(exc))
            return False
        self._request_seen = True
        self._request_upgrade = proposes_upgrade(fields) if upgrade is None else upgrade
        self._peer_version = version
        self._emit(HeadersReceived(self._stream_id, block))
        return True

    def _receive_failed(self, code: int, message: str) -> None:
        if code == 501:
            # h11 says 501 for every Transfer-Encoding but "chunked"; in a
            # request whose last coding is not chunked, RFC 9112 §6.3 (4)
            # requires 400, and h11 cannot tell the cases apart.
            code = 400
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            # RFC 9112 §3, §5: answer what cannot be parsed, then close, as
            # the rest of the stream cannot be trusted.
            reason = HTTPStatus(code).phrase.encode("ascii")
            body = b"%d %s\n" % (code, reason)
            fields = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
                (b"connection", b"close"),
            ]
            self._send(h11.Response(status_code=code, headers=fields, reason=reason))
            if self._request_method != b"HEAD":
                # RFC 9110 §9.3.2: a response to HEAD carries no content.
                self._send(h11.Data(data=body))
            self._send(END_OF_MESSAGE)
        self._terminate(code, message)

    def _new_cycle(self) -> None:
        self._request_seen = False
        self._request_method = b""
        self._request_upgrade = False
        self._end_deferred = False
        self._tunnel_local_ended = False
