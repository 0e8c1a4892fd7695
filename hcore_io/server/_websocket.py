"""One WebSocket: the ASGI ``websocket`` scope over an HTTPStream.

Theory of operation
-------------------
A :class:`WebSocketExchange` serves a request that asked for a WebSocket:
an HTTP/1.1 ``Upgrade`` (RFC 6455 §4), or an extended CONNECT on HTTP/2
(RFC 8441) or HTTP/3 (RFC 9220).  :func:`hcore.websocket.parse_request`
checks it; a malformed one is refused (400/426) without the application.
The application then gets ``websocket.connect`` and answers with

* ``websocket.accept``: the ``101`` (HTTP/1.1) or ``200`` goes out and a
  :class:`~hcore.websocket.WebSocketSession` runs the frames;
* ``websocket.close`` before accepting: a ``403``;
* ``websocket.http.response.start`` / ``.body`` (the ASGI
  ``websocket.http.response`` extension): a response of its own.

Once accepted, a reader task (in the exchange's own task group, so that an
application cancelling ``receive()`` never cancels a read of the stream)
feeds the stream's data to the session and queues whole messages for
``receive()`` (a few at most: a slow application holds the reader back, and
with it the peer through flow control).  ``send()`` and the reader write
under one lock, so frames leave whole and in order; pings are answered and
the peer's Close is echoed by the session.  Bad input from the peer (an
oversized message, invalid UTF-8, an unmasked frame, a bad close code) makes
the session queue a Close with 1009, 1007 or 1002, which is sent before the
end.

The end, after both Close frames or a failure: on HTTP/2 and HTTP/3 the
server ends its side of the stream and gives the client a moment to end
its own (RFC 8441 §5: END_STREAM stands for TCP's FIN); on HTTP/1.1 the
server closes the connection first (RFC 6455 §7.1.1).  The application
receives ``websocket.disconnect`` with the peer's close code (1006 when the
stream ended without one); a ``send()`` after that raises
:class:`~hcore_io.server.ClientDisconnected`.

Server shutdown: :meth:`WebSocketExchange.go_away` sends a Close with 1001
(going away, RFC 6455 §7.4.1) and the closing handshake runs as any other,
within the server's grace period; the client's echo makes the application
see ``websocket.disconnect`` with 1001.  A WebSocket accepted after the
shutdown began is closed so at once.

The frame pumping (the reader, the writes of the session's frames, the
end of the stream) is :class:`~hcore_io.server._websocket_frames.FramePump`.
"""

from __future__ import annotations

import logging
import time
from enum import Enum

import anyio
from anyio.abc import TaskGroup

from hcore import HCoreError, Headers
from hcore.websocket import (
    PerMessageDeflate,
    SessionState,
    WebSocketRequest,
    WebSocketSession,
    parse_request,
)
from hcore_io.connections import HTTPStream
from hcore_io.server._exchange import ClientDisconnected, ConnectionInfo
from hcore_io.server._types import ASGIApp, Message
from hcore_io.server._websocket_frames import ABNORMAL, STREAM_ERRORS, FramePump
from hcore_io.server._websocket_scope import (
    HANDSHAKE_FIELDS,
    WebSocketOptions,
    fields_of,
    websocket_scope,
)

__all__ = ("WebSocketExchange", "WebSocketOptions")

logger = logging.getLogger("hcore.server")
access_logger = logging.getLogger("hcore.access")

# Whole messages queued for receive() before the reader waits.
_QUEUED_MESSAGES = 4
_NO_STATUS = 1005
_INTERNAL_ERROR = 1011
# RFC 6455 §7.4.1: the endpoint is going away (a server shutting down).
_GOING_AWAY = 1001


class _State(Enum):
    HANDSHAKE = "handshake"
    CONNECTED = "connected"
    RESPONSE = "response"
    CLOSED = "closed"


class WebSocketExchange(FramePump):
    """Runs an ASGI application for one WebSocket request.

    :param stream: the request's stream (its headers already taken).
    :param headers: the request header block.
    :param info: what the connection's exchanges share.
    :param options: the server's WebSocket settings.
    """

    def __init__(
        self,
        stream: HTTPStream,
        headers: Headers,
        info: ConnectionInfo,
        options: WebSocketOptions,
    ) -> None:
        self._stream = stream
        self._headers = headers
        self._info = info
        self._options = options
        self._multiplexed = stream.connection.multiplexed
        self._state = _State.HANDSHAKE
        self._connect_sent = False
        self._changed = anyio.Event()
        self._session: WebSocketSession | None = None
        self._request: WebSocketRequest | None = None
        self._send_lock = anyio.Lock()
        self._messages_out, self._messages_in = anyio.create_memory_object_stream[
            Message
        ](_QUEUED_MESSAGES)
        self._reader_done = anyio.Event()
        self._task_group: TaskGroup | None = None
        self._close_code = ABNORMAL
        self._close_reason = ""
        self._pending_head: list[tuple[bytes, bytes]] | None = None
        self._status = 0
        self._start = time.time()
        self._target = ""
        self._going_away = False

    # -- running -------------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        """Check the request, run the application, close; always ends the stream."""
        try:
            parsed = parse_request(self._headers)
            if not isinstance(parsed, WebSocketRequest):
                self._target = dict(self._headers).get(b":path", b"").decode("latin-1")
                await self._respond(parsed.status, parsed.headers, parsed.reason)
                return
            self._request = parsed
            self._target = parsed.path.decode("latin-1")
            async with anyio.create_task_group() as group:
                self._task_group = group
                failed = False
                try:
                    await app(
                        websocket_scope(parsed, self._info), self.receive, self.send
                    )
                except ClientDisconnected:
                    pass
                except Exception:
                    failed = True
                    logger.exception(
                        "ASGI application failed on WebSocket %s", self._target
                    )
                await self._after_app(failed)
                group.cancel_scope.cancel()
        finally:
            self._messages_out.close()
            self._messages_in.close()
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
                if self._state is _State.CONNECTED and not self._multiplexed:
                    # The upgraded connection carries nothing else; it is
                    # closed at once (after the closing handshake, or its
                    # timeout, the client sends nothing to linger for).
                    await self._stream.connection.aclose()
            if access_logger.isEnabledFor(logging.INFO):
                self._log()

    async def _after_app(self, failed: bool) -> None:
        state = self._state
        if state is _State.HANDSHAKE:
            # The application returned without answering: refuse (500 if
            # it failed, else as if it had closed: 403).
            if failed:
                await self._respond(500, (), "Internal Server Error")
            else:
                await self._respond(403, (), "Forbidden")
        elif state is _State.RESPONSE:
            # A denial response cut short.
            await self._reset()
        elif state is _State.CONNECTED:
            # Nobody reads any more: a reader waiting for room is let go.
            self._messages_in.close()
            session = self._session
            assert session is not None
            if session.state is SessionState.OPEN:
                try:
                    await self._close(_INTERNAL_ERROR if failed else 1000, "")
                except ClientDisconnected:
                    pass
            with anyio.move_on_after(self._options.close_timeout):
                await self._reader_done.wait()

    # -- HTTP responses ------------------------------------------------------------

    async def _respond(self, status: int, extra: Headers, text: str) -> None:
        body = (text + "\n").encode()
        self._state = _State.CLOSED
        self._status = status
        self._changed.set()
        head = (
            (b":status", b"%d" % status),
            *[(n, v) for n, v in extra if n != b":status"],
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
            *self._info.extra_headers,
        )
        try:
            await self._stream.send_headers(head)
            await self._stream.send_data(body, end_stream=True)
        except STREAM_ERRORS:
            pass

    async def _reset(self) -> None:
        self._state = _State.CLOSED
        try:
            await self._stream.send_stream_reset(
                self._stream.connection.error_codes.internal_error
            )
        except STREAM_ERRORS:
            pass

    def _log(self) -> None:
        client = self._info.client
        when = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(self._start))
        access_logger.info(
            '%s - - [%s] "WEBSOCKET %s HTTP/%s" %d %s',
            client[0] if client is not None else "-",
            when,
            self._target,
            self._info.http_version,
            self._status,
            self._close_code,
        )

    # -- receive -------------------------------------------------------------------

    def _disconnect(self) -> Message:
        return {
            "type": "websocket.disconnect",
            "code": self._close_code,
            "reason": self._close_reason,
        }

    async def receive(self) -> Message:
        """ASGI ``receive``: connect, then messages, then ``websocket.disconnect``."""
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        # Bounded: the state only moves forward.
        while self._state is _State.HANDSHAKE:
            await self._changed.wait()
        if self._state is not _State.CONNECTED:
            return self._disconnect()
        try:
            return await self._messages_in.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return self._disconnect()

    # -- send ----------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """ASGI ``send``: accept, messages, close, or a denial response.

        :raises ClientDisconnected: if the WebSocket is closed.
        :raises RuntimeError: if the message is out of order or malformed.
        """
        kind = message.get("type")
        state = self._state
        if state is _State.HANDSHAKE:
            if kind == "websocket.accept":
                await self._accept(message)
            elif kind == "websocket.close":
                # ASGI: closing before accepting is a 403.
                await self._respond(403, (), "Forbidden")
            elif kind == "websocket.http.response.start":
                self._start_response(message)
            else:
                raise RuntimeError(f"unexpected {kind!r} before websocket.accept")
        elif state is _State.RESPONSE:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"unexpected {kind!r} in a denial response")
            await self._send_body(message)
        elif state is _State.CONNECTED:
            if kind == "websocket.send":
                await self._send_message(message)
            elif kind == "websocket.close":
                code = message.get("code", 1000)
                reason = message.get("reason") or ""
                if type(code) is not int or not isinstance(reason, str):
                    raise RuntimeError("websocket.close takes an int code, str reason")
                await self._close(code, reason)
            else:
                raise RuntimeError(f"unexpected {kind!r} on an open WebSocket")
        else:
            raise ClientDisconnected(f"the WebSocket is closed ({kind} not sent)")

    async def _accept(self, message: Message) -> None:
        request = self._request
        assert request is not None
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise RuntimeError("websocket.accept's subprotocol must be a str")
        extra = [
            (n, v)
            for n, v in fields_of(message.get("headers", ()))
            if n not in HANDSHAKE_FIELDS
        ]
        try:
            accepted = request.accept(
                subprotocol=subprotocol,
                extensions=[PerMessageDeflate()] if self._options.deflate else (),
                headers=extra,
            )
        except HCoreError as exc:
            raise RuntimeError(f"cannot accept the WebSocket: {exc}") from exc
        self._session = accepted.session(
            max_message_size=self._options.max_message_size
        )
        status = int(dict(accepted.headers)[b":status"])
        try:
            await self._stream.send_headers(accepted.headers)
        except STREAM_ERRORS as exc:
            self._state = _State.CLOSED
            self._changed.set()
            raise ClientDisconnected(f"the client went away: {exc}") from exc
        self._status = status
        self._state = _State.CONNECTED
        self._changed.set()
        assert self._task_group is not None
        self._task_group.start_soon(self._read)
        if self._going_away:
            await self.go_away()

    async def go_away(self) -> None:
        """The server is shutting down: close the WebSocket with 1001.

        Before the WebSocket is accepted, it is closed so once accepted.
        """
        self._going_away = True
        if self._state is _State.CONNECTED:
            try:
                await self._close(_GOING_AWAY, "server shutting down")
            except ClientDisconnected:
                pass

    def _start_response(self, message: Message) -> None:
        status = message.get("status")
        if type(status) is not int or not 100 <= status <= 599 or status == 101:
            raise RuntimeError(f"invalid denial status {status!r}")
        if 200 <= status < 300 and self._multiplexed:
            # A 2xx would open the tunnel of an extended CONNECT.
            raise RuntimeError("a WebSocket denial cannot be 2xx on HTTP/2 or 3")
        head = [(b":status", b"%d" % status)]
        head.extend(fields_of(message.get("headers", ())))
        head.extend(self._info.extra_headers)
        self._pending_head = head
        self._status = status
        self._state = _State.RESPONSE

    async def _send_body(self, message: Message) -> None:
        body = message.get("body", b"")
        if not isinstance(body, bytes | bytearray | memoryview):
            raise RuntimeError("websocket.http.response.body's body must be bytes")
        more = bool(message.get("more_body", False))
        try:
            head = self._pending_head
            if head is not None:
                self._pending_head = None
                if not more and not any(n == b"content-length" for n, _ in head):
                    head.append((b"content-length", b"%d" % len(body)))
                await self._stream.send_headers(head)
            if body or not more:
                await self._stream.send_data(bytes(body), end_stream=not more)
        except STREAM_ERRORS as exc:
            self._state = _State.CLOSED
            raise ClientDisconnected(f"the client went away: {exc}") from exc
        if not more:
            self._state = _State.CLOSED
            self._changed.set()

    async def _send_message(self, message: Message) -> None:
        session = self._session
        assert session is not None
        text, data = message.get("text"), message.get("bytes")
        async with self._send_lock:
            if session.state is not SessionState.OPEN:
                raise ClientDisconnected("the WebSocket is closing or closed")
            if isinstance(text, str):
                session.send_text(text)
            elif isinstance(data, bytes | bytearray | memoryview):
                session.send_bytes(bytes(data))
            else:
                raise RuntimeError("websocket.send needs bytes or text")
            await self._flush(session)

    async def _close(self, code: int, reason: str) -> None:
        session = self._session
        assert session is not None
        async with self._send_lock:
            if session.state is not SessionState.OPEN:
                return
            try:
                session.send_close(code, reason)
            except HCoreError as exc:
                raise RuntimeError(f"bad websocket.close: {exc}") from exc
            self._closing_started()
            await self._flush(session)
