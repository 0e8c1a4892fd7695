"""The response side of an ASGI ``http`` exchange: what ``send()`` does.

:class:`ResponseSender` is the half of
:class:`~hcore_io.server._exchange.Exchange` that checks the application's
``http.response.start``, ``http.response.body`` and
``http.response.trailers`` messages and writes them to the stream: the head
waits for the first body message (so that a response given in one piece gets
a ``Content-Length`` and leaves with its body), connection-specific fields
are dropped on HTTP/2 and HTTP/3 (RFC 9113 §8.2.2, RFC 9114 §4.2), and a
client gone away turns into :class:`ClientDisconnected`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from hcore_io._exceptions import NetworkError
from hcore_io.connections import HTTPStream, StreamReset
from hcore_io.server._types import Message

if TYPE_CHECKING:
    from hcore_io.server._exchange import ConnectionInfo

__all__ = ("ClientDisconnected", "ResponseSender")

# RFC 9113 §8.2.2, RFC 9114 §4.2: fields that HTTP/2 and HTTP/3 forbid.
_CONNECTION_SPECIFIC = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
    )
)
_SEND_ERRORS = (StreamReset, NetworkError)
# (Tuples, not unions: ``A | B`` builds an object at every call.)
_SEQUENCES = (list, tuple)
_BYTES = (bytes, bytearray, memoryview)
# The ``:status`` field of each status answered so far, made once.
_STATUS_FIELDS: dict[int, tuple[bytes, bytes]] = {}
#: Statuses whose responses have no content (RFC 9110 §6.4.1): no body is
#: sent and no content-length is added.
_NO_CONTENT = frozenset({204, 304})


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone away (ASGI 2.4 §send)."""


class ResponseSender:
    """ASGI ``send`` for an exchange, which initialises the state below."""

    __slots__ = (
        "_body_sent",
        "_bytes_sent",
        "_disconnected",
        "_has_length",
        "_pending_head",
        "_response_complete",
        "_response_started",
        "_status",
        "_trailers",
        "_trailers_expected",
        "_waiting",
    )

    _stream: HTTPStream
    _info: ConnectionInfo
    _head: bool
    _disconnected: bool
    _response_started: bool
    _response_complete: bool
    _pending_head: list[tuple[bytes, bytes]] | None
    _has_length: bool
    _trailers_expected: bool
    _trailers: list[tuple[bytes, bytes]]
    _body_sent: bool
    _bytes_sent: int
    _status: int
    _waiting: anyio.CancelScope | None

    async def send(self, message: Message) -> None:
        """ASGI ``send``: the response start, body pieces and trailers.

        :raises ClientDisconnected: if the client has gone away.
        :raises RuntimeError: if the message is out of order or malformed.
        """
        kind = message.get("type")
        if self._disconnected:
            raise ClientDisconnected(f"the client went away ({kind} not sent)")
        try:
            if kind == "http.response.start":
                self._start_response(message)
            elif kind == "http.response.body":
                await self._send_body(message)
            elif kind == "http.response.trailers":
                await self._send_trailers(message)
            else:
                raise RuntimeError(f"unexpected ASGI message type {kind!r}")
        except _SEND_ERRORS as exc:
            self._disconnected = True
            raise ClientDisconnected(f"the client went away: {exc}") from exc

    def _start_response(self, message: Message) -> None:
        if self._response_started:
            raise RuntimeError("http.response.start sent twice")
        status = message.get("status")
        if type(status) is not int or not 200 <= status <= 599:
            raise RuntimeError(f"invalid response status {status!r}")
        field = _STATUS_FIELDS.get(status)
        if field is None:
            # At most 400 of them (200 to 599).
            field = _STATUS_FIELDS[status] = (b":status", b"%d" % status)
        head = [field]
        self._has_length = self._add_fields(head, message.get("headers", ()))
        head.extend(self._info.extra_headers)
        self._trailers_expected = bool(message.get("trailers", False))
        self._status = status
        self._pending_head = head
        self._response_started = True

    def _add_fields(self, fields: list[tuple[bytes, bytes]], headers: object) -> bool:
        """Check the application's fields and append them, names lower-cased.

        :return: whether a ``content-length`` is among them.
        """
        if not isinstance(headers, _SEQUENCES):
            raise RuntimeError("response headers must be a list of pairs")
        filtered = self._info.filter_headers
        has_length = False
        for pair in headers:
            name, value = pair
            if not (
                type(pair) is tuple
                and type(name) is bytes
                and type(value) is bytes
                and name.islower()
            ):
                # (Most fields come as tuples of bytes, their names
                # lower-cased: those are appended as they are.)
                if not isinstance(name, bytes) or not isinstance(value, bytes):
                    raise RuntimeError(f"header {pair!r} is not a pair of bytes")
                name = name.lower()
                pair = (name, value)
            if filtered and name in _CONNECTION_SPECIFIC:
                continue
            if name == b"content-length":
                has_length = True
            fields.append(pair)
        return has_length

    async def _send_body(self, message: Message) -> None:
        if not self._response_started:
            raise RuntimeError("http.response.body sent before http.response.start")
        if self._body_sent:
            raise RuntimeError("http.response.body sent after the response ended")
        body = message.get("body", b"")
        if not isinstance(body, _BYTES):
            raise RuntimeError("http.response.body's body must be bytes")
        more = message.get("more_body", False)
        end = not more and not self._trailers_expected
        # HEAD, 204 and 304 (RFC 9110 §9.3.2, §15.3.5, §15.4.5) end at the
        # head, whatever body the application sends.
        if self._head or self._status in _NO_CONTENT:
            data = b""
        else:
            data = body if type(body) is bytes else bytes(body)
        head = self._pending_head
        if head is not None:
            self._pending_head = None
            if end and not self._has_length and self._status not in _NO_CONTENT:
                head.append((b"content-length", b"%d" % len(body)))
            if data:
                # One write for the head and the first piece of the body.
                await self._stream.send_headers_and_data(head, data, end_stream=end)
            else:
                await self._stream.send_headers(head, end_stream=end)
        elif data or end:
            await self._stream.send_data(data, end_stream=end)
        self._bytes_sent += len(data)
        if not more:
            self._body_sent = True
            if end:
                # _completed(), written out.
                self._response_complete = True
                if self._waiting is not None:
                    self._waiting.cancel()

    def _completed(self) -> None:
        """Note the response's end; stop a wait for the disconnect."""
        self._response_complete = True
        if self._waiting is not None:
            self._waiting.cancel()

    async def _send_trailers(self, message: Message) -> None:
        if not self._trailers_expected or not self._body_sent:
            raise RuntimeError(
                "http.response.trailers needs trailers=True and the whole body first"
            )
        if self._response_complete:
            raise RuntimeError("http.response.trailers sent after the response ended")
        self._add_fields(self._trailers, message.get("headers", ()))
        if not message.get("more_trailers", False):
            fields = self._trailers
            if fields:
                await self._stream.send_headers(fields, end_stream=True)
            else:
                await self._stream.send_data(b"", end_stream=True)
            self._completed()
