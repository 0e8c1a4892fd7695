"""The server side of HTTP/1.1 on httptools (llhttp).

Theory of operation
===================

llhttp parses eagerly: everything fed to it is parsed at once, and its
callbacks (``on_url``, ``on_header``, ``on_headers_complete``, ``on_body``,
``on_message_complete``) arrive during :meth:`feed_data`.  The protocol gives
the same events and answers as :class:`~hcore.protocols.http1.H11ServerProtocol`
by separating *parsing* from *delivery*:

* The parser side counts the requests it has completed (``_parsed``); the
  delivery side counts the exchanges that are over (``_exchanges``).  While
  they are equal the message being parsed belongs to the current exchange
  and its pieces become events at once.  Otherwise the client is sending
  ahead (RFC 9112 §9.3.2): the pieces wait in ``_backlog`` as items and are
  delivered, in order, when the exchanges before them are over.  Their size
  on the wire is counted and bounded by ``max_pipelined_size``; past the
  bound reading stops and the current exchange is the last (429).
* Bad input found by llhttp or by the checks here becomes a failure item
  in the same queue, so a bad pipelined request is answered with 400 only
  when its turn comes, as h11 does.
* A CONNECT or an Upgrade request (with ``Connection: upgrade``) makes
  llhttp stop right after it and say where the rest of the input begins; the
  rest, and all that follows, is kept raw.  If the answer switches protocols
  (RFC 9110 §7.8, §9.3.6) those bytes start the tunnel; if it refuses, they
  are parsed afresh as the next request.  An Upgrade request without that
  option (RFC 9110 §7.8 requires it) is not seen as one by llhttp, which goes
  on parsing: bytes after it cannot be handed over, so a 101 to it with
  such bytes waiting ends the connection (400).  CONNECT with content is
  refused (RFC 9110 §9.3.6), as llhttp and h11 would frame it differently.
* The response side needs no parser: heads are planned by the helpers the
  h11 protocol uses (``_headers.py``), written as bytes here, and the body is
  framed by Content-Length, chunked coding or the close of the connection.

The phases run HTTP → TUNNEL → CLOSED, or HTTP → CLOSED; every way to the end
goes through :meth:`_terminate`, which queues one ConnectionTerminated.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import cast

import httptools

from hcore._error_codes import HTTP1_ERROR_CODES
from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.events import HeadersReceived
from hcore.protocols.http1._common import tokens
from hcore.protocols.http1._headers import (
    BadMessage,
    OutgoingBody,
    check_fields,
    plan_response_head,
    request_block,
    scheme_bytes,
)
from hcore.protocols.http1._httptools_base import (
    HEAD_OVERHEAD,
    Halt,
    Item,
    ItemKind,
    ToolsProtocol,
)
from hcore.protocols.http1._httptools_writer import (
    head_fields,
    rewrite_framing,
)
from hcore.protocols.http1._limits import (
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_PIPELINED_SIZE,
)
from hcore.protocols.http1._response_memo import KnownHead, ResponseMemo, plain_method
from hcore.protocols.http1._roles import ServerRole
from hcore.protocols.http1._strict import check_request_head

__all__ = ("HTTPToolsServerProtocol",)

# The heads this implementation wrote (see _response_memo).
_MEMO = ResponseMemo()

#: A request head item: block, method, upgrade proposed, version, keep-alive.
_Head = tuple[tuple[tuple[bytes, bytes], ...], bytes, bool, bytes, bool]


def _make_parser(protocol: HTTPToolsServerProtocol) -> httptools.HttpRequestParser:
    parser = httptools.HttpRequestParser(protocol)
    # Any "HTTP/d.d" passes llhttp, so that versions are judged by
    # check_request_head (505 beyond 1.x) like h11's are.
    parser.set_dangerous_leniencies(lenient_version=True)
    return parser


class HTTPToolsServerProtocol(ServerRole, ToolsProtocol):
    """The server end of an HTTP/1.1 connection, parsed by llhttp.

    Events, answers to bad input, limits and their defaults are those of
    :class:`~hcore.protocols.http1.H11ServerProtocol`; llhttp is stricter in
    a few places h11 tolerates (obsolete line folding, bare LF line ends,
    CONNECT with content, methods llhttp does not know, e.g. ``FOO``), which
    are answered with 400.  The parser's
    callbacks (``on_url``, ``on_header``, ...) are methods of the protocol,
    to save a call per field; they are not for applications.

    :param scheme: ``:scheme`` of received requests (``"https"`` over TLS).
    :param max_header_size: largest request head accepted, in bytes.
    :param max_header_count: most fields accepted in a head or trailers.
    :param max_pipelined_size: most bytes held that the client sent ahead of
        the current exchange.
    """

    __slots__ = ("_parser", "_scheme", "_url")

    def __init__(
        self,
        *,
        scheme: str = "http",
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
        max_pipelined_size: int = DEFAULT_MAX_PIPELINED_SIZE,
    ) -> None:
        super().__init__(
            max_header_size=max_header_size,
            max_header_count=max_header_count,
            max_pipelined_size=max_pipelined_size,
        )
        self._scheme = scheme_bytes(scheme)
        self._parser = _make_parser(self)
        self._url = b""

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
        if self._tunnel or stream_id != self._stream_id or not self._request_seen:
            raise LocalProtocolError(f"stream {stream_id} cannot send headers now")
        body = self._sending
        if body is not None:
            self._submit_trailers(body, headers, end_stream)
            return
        method = self._request_method
        plain = (
            not self._closing
            and self._keep_alive
            and self._peer_version == b"1.1"
            and plain_method(method)
        )
        if plain:
            # A head written before for an equal block (see _response_memo).
            known = _MEMO.recall(headers, end_stream)
            if known is not None:
                self._response_close = False
                self._outgoing.append(known.head)
                self._response_begun(known.new_body(), end_stream)
                return
        status, reason, fields, body = plan_response_head(
            headers,
            end_stream,
            request_method=method,
            peer_version=self._peer_version,
            close=self._closing,
        )
        check_fields(fields)
        switching = self._switching(status)
        if body is None or switching:
            # Interim responses and switches go out as given.
            self._outgoing.append(
                b"HTTP/1.1 %d %s\r\n" % (status, reason) + head_fields(fields)
            )
            if switching:
                # RFC 9110 §7.8, §9.3.6: the connection now carries the tunnel.
                self._tunnel_local_ended = end_stream
                self._enter_tunnel()
            return
        body.check(0, end_stream)
        fields, close = rewrite_framing(
            fields,
            body.framing,
            head_request=method == b"HEAD",
            status=status,
            keep_alive=self._keep_alive,
            peer_version=self._peer_version,
        )
        self._response_close = close
        head = b"HTTP/1.1 %d %s\r\n" % (status, reason) + head_fields(fields)
        self._outgoing.append(head)
        if plain and not close:
            _MEMO.keep(headers, end_stream, KnownHead(head, body))
        self._response_begun(body, end_stream)

    def _response_begun(self, body: OutgoingBody, end_stream: bool) -> None:
        """After a final response head went out: its body, maybe its end."""
        self._sending = body
        self._response_started = True
        if self._end_deferred:
            # The switch was refused: the request really is complete.
            self._end_deferred = False
            self._emit_end()
        if end_stream:
            self._end_body(body)

    # -- llhttp callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        """llhttp: a request begins."""
        if self._halted:
            raise Halt
        self._in_message = True
        self._in_head = True
        self._url = b""
        self._fields = []
        self._head_size = 0
        self._msg_size = 0

    def on_url(self, url: bytes) -> None:
        """llhttp: a piece of the request target."""
        self._url += url
        self._grow_head(len(url))
        if self._halted:
            raise Halt

    def on_headers_complete(self) -> None:
        """llhttp: the request head is complete; check it and pass it on."""
        parser = self._parser
        method: bytes = parser.get_method()
        fields = self._fields
        head_size = self._head_size
        self._in_head = False
        self._fields = []
        self._head_size = 0
        self._count_size(len(method) + HEAD_OVERHEAD)
        item = self._check_request(
            method, self._url, fields, parser.get_http_version(), head_size
        )
        self._put(item)
        if self._halted or item[0] is ItemKind.FAIL:
            raise Halt

    def on_body(self, body: bytes) -> None:
        """llhttp: a piece of the request body."""
        self._count_size(len(body))
        self._put((ItemKind.DATA, body))
        if self._halted:
            raise Halt

    def on_message_complete(self) -> None:
        """llhttp: the request (with its trailers, if any) is complete."""
        if self._halted:
            raise Halt
        trailers = self._fields
        self._fields = []
        self._in_message = False
        item: Item = (ItemKind.END, tuple(trailers) if trailers else None)
        self._parsed += 1
        if self._parsed - 1 == self._exchanges and not self._backlog:
            self._handle(item)
        else:
            self._queue_ahead(self._msg_size)
            self._queue(item)

    def on_header(self, name: bytes, value: bytes) -> None:
        """llhttp: a field of the head or of the trailers."""
        if value[-1:] in (b" ", b"\t"):
            # RFC 9110 §5.5: trailing whitespace is not part of the value.
            value = value.rstrip(b" \t")
        fields = self._fields
        fields.append((name.lower(), value))
        if len(fields) > self._max_header_count:
            self._refuse_head(f"more than {self._max_header_count} header fields")
        # _grow_head, inlined: this runs for every field.
        size = len(name) + len(value) + 4
        self._head_size += size
        if self._head_size > self._max_header_size:
            self._refuse_head(f"message head larger than {self._max_header_size} bytes")
        self._msg_size += size
        if self._parsed != self._exchanges:
            self._count_ahead(size)
        if self._halted:
            raise Halt

    def _grow_head(self, size: int) -> None:
        """Count bytes of a head or trailer block; 431 past the bound."""
        self._head_size += size
        if self._head_size > self._max_header_size:
            self._refuse_head(f"message head larger than {self._max_header_size} bytes")
        self._count_size(size)

    def _refuse_head(self, complaint: str) -> None:
        where = "" if self._in_head else "trailers: "
        self._put((ItemKind.FAIL, (431, where + complaint)))
        raise Halt

    # -- role-specific parts ---------------------------------------------------

    def _check_request(
        self,
        method: bytes,
        url: bytes,
        fields: list[tuple[bytes, bytes]],
        version: str,
        head_size: int,
    ) -> Item:
        """Apply the checks h11 and ``_strict.py`` make on a request head.

        RFC 9112 §3.2 (one Host, required in HTTP/1.1), §6.3 (chunked must
        be the final and only coding), §9.3 (keep-alive).

        :param head_size: the target's and the fields' size as counted by
            the callbacks (each field's ``": "`` and CRLF included), which
            already bounded the field count.
        """
        # The size HeadLimits.check estimates: the request line's parts and
        # 11 bytes of it, the CRLF ending the head, and what was counted.
        if head_size + len(method) + 15 > self._max_header_size:
            return (
                ItemKind.FAIL,
                (431, f"message head larger than {self._max_header_size} bytes"),
            )
        if version == "0.9" and not fields:
            # RFC 9112 §2.3, Appendix C.1: "GET /" without a version is
            # HTTP/0.9, which is not spoken here.
            return (ItemKind.FAIL, (400, "HTTP/0.9 request"))
        http_version = version.encode("ascii")
        refusal = check_request_head(url, http_version, fields)
        if refusal is not None:
            return (ItemKind.FAIL, refusal)
        if http_version != b"1.0":
            # RFC 9110 §2.5: a higher minor version is read as 1.1.
            http_version = b"1.1"
        hosts = 0
        upgrade = False
        keep_alive = http_version == b"1.1"
        codings: list[bytes] = []
        lengths = False
        for name, value in fields:
            if name == b"host":
                hosts += 1
            elif name == b"connection":
                if b"close" in tokens(value):
                    keep_alive = False
            elif name == b"transfer-encoding":
                codings += tokens(value)
            elif name == b"content-length":
                lengths = lengths or value != b"0"
            elif name == b"upgrade":
                upgrade = upgrade or bool(tokens(value))
        if method == b"CONNECT" and (codings or lengths):
            # RFC 9110 §9.3.6: CONNECT has no content; llhttp would read
            # what follows as the tunnel, h11 as a body.
            return (ItemKind.FAIL, (400, "content in a CONNECT request"))
        if codings and codings != [b"chunked"]:
            return (ItemKind.FAIL, (400, f"unsupported Transfer-Encoding {codings!r}"))
        if hosts > 1:
            return (ItemKind.FAIL, (400, "found multiple Host: headers"))
        if hosts == 0 and http_version == b"1.1":
            return (ItemKind.FAIL, (400, "missing mandatory Host: header"))
        try:
            block = request_block(method, url, fields, self._scheme)
        except BadMessage as exc:
            return (ItemKind.FAIL, (400, str(exc)))
        self._parsed_keep_alive = keep_alive
        return (ItemKind.HEAD, (block, method, upgrade, http_version, keep_alive))

    def _enter_tunnel(self) -> None:
        """Hand the connection over to raw bytes (RFC 9110 §9.3.6, §7.8)."""
        self._tunnel = True
        if self._input_stopped:
            # Bytes were dropped; the tunnel would be corrupt.
            self._terminate(
                HTTP1_ERROR_CODES.enhance_your_calm, self._close_message or ""
            )
            return
        backlog = self._backlog
        if (
            backlog
            and backlog[0][0] is not ItemKind.SWITCH
            and (backlog[0][0] is not ItemKind.EOF)
        ):
            # An Upgrade without "Connection: upgrade": llhttp parsed what
            # followed as HTTP, so the bytes are gone.
            self._terminate(
                HTTP1_ERROR_CODES.protocol_error,
                "bytes after an Upgrade request without Connection: upgrade",
            )
            return
        self._deliver()
        self._tunnel_check_done()

    def _new_parser(self) -> None:
        self._parser = _make_parser(self)

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset: int = exc.args[0]
            self._switch_raw = bytearray(data[offset:])
            self._put((ItemKind.SWITCH, self._switch_raw))
            self._count_size(len(data) - offset)
        except httptools.HttpParserError as exc:
            self._parse_failed(exc, len(data))

    def _parse_failed(self, exc: Exception, size: int) -> None:
        self._halted = True
        if isinstance(exc, httptools.HttpParserCallbackError):
            # A callback stopped the parser (limits, bad head, the end);
            # it queued what to say.
            return
        message = str(exc)
        code = 400
        if not (self._parsed == self._exchanges and not self._backlog):
            # Bad input sent ahead: h11 would have held these bytes first.
            if not self._parsed_keep_alive:
                # Data after a request that closes the connection is ignored.
                return
            self._count_size(size)
        self._put((ItemKind.FAIL, (code, message)))
        self._halted = True

    def _receive_failed(self, code: int, message: str) -> None:
        if not self._response_started:
            # RFC 9112 §3, §5: answer what cannot be parsed, then close, as
            # the rest of the stream cannot be trusted.
            reason = HTTPStatus(code).phrase.encode("ascii")
            body = b"%d %s\n" % (code, reason)
            self._outgoing.append(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (code, reason, len(body), body)
            )
        self._terminate(code, message)

    def _start_request(self, value: object) -> None:
        block, method, upgrade, version, keep_alive = cast(_Head, value)
        self._request_seen = True
        self._request_method = method
        self._request_upgrade = upgrade
        self._peer_version = version
        self._keep_alive = keep_alive
        self._emit(HeadersReceived(self._stream_id, block))
