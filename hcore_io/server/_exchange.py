"""One request and its response: the ASGI ``http`` scope over an HTTPStream.

Theory of operation
-------------------
An :class:`Exchange` runs in the task that serves its stream (the
connection's own task on HTTP/1.1, a worker task of the connection on
HTTP/2 and HTTP/3, see :mod:`~hcore_io.server._stream_workers`); it has no
task of its own.  ``receive()`` takes the stream's next
event only when the application asks, so the request body streams with
backpressure: while the application does not read, the connection stops
acknowledging data and the client's flow control stops it.  ``send()``
returns once the protocol has taken the bytes and the peer's window let them
go (``HTTPStream.send_data`` waits for credit).  A body piece the
application waits for longer than ``body_timeout`` (slowloris on the body)
gets the request a 408 and gives the stream up.

The response head waits until the first body message, so that a response
given in one piece gets a ``Content-Length`` and leaves with its body.
``100 Continue`` goes out when the application first asks for the body of a
request that expects it (RFC 9110 §10.1.1), unless a response has begun.

When the client goes away (a reset, a GOAWAY that refused the stream, a
closed connection) ``receive()`` answers ``http.disconnect`` and ``send()``
raises :class:`ClientDisconnected`.  When the application returns or fails,
a response that never began becomes a 500, one cut short resets the stream
(on HTTP/1.1 that closes the connection), and the stream is released.

The sending half (``send()``) is :class:`~hcore_io.server._response.ResponseSender`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from urllib.parse import unquote

import anyio
import anyio.lowlevel

from hcore import HCoreError, Headers
from hcore.events import (
    DataReceived,
    Event,
    GoawayReceived,
    StreamResetReceived,
    StreamResetSent,
    TrailersReceived,
)
from hcore_io._exceptions import NetworkError, ReadTimeout
from hcore_io.connections import HTTPStream, StreamReset
from hcore_io.server._response import ClientDisconnected, ResponseSender
from hcore_io.server._types import ASGIApp, Message

__all__ = ("ClientDisconnected", "ConnectionInfo", "Exchange")

logger = logging.getLogger("hcore.server")
access_logger = logging.getLogger("hcore.access")

_DISCONNECT: Message = {"type": "http.disconnect"}
_CONTINUE = ((b":status", b"100"),)
_SEND_ERRORS = (StreamReset, NetworkError)
# The events that say the client went away (a tuple: ``A | B`` builds an
# object at every call).
_GONE = (StreamResetReceived, StreamResetSent, GoawayReceived)
_ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
# The usual methods and schemes, decoded once.
_METHODS = {
    name.encode(): name
    for name in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
}
_SCHEMES = {b"": "http", b"http": "http", b"https": "https"}
# How often a wait for the client's disconnect lets the application's
# cancellation through (see Exchange._wait_for_disconnect).
_DISCONNECT_POLL = 0.1


class ConnectionInfo:
    """What every exchange of one connection shares."""

    __slots__ = (
        "body_timeout",
        "client",
        "extra_headers",
        "filter_headers",
        "http_version",
        "max_body_size",
        "root_path",
        "server",
        "state",
    )

    def __init__(
        self,
        *,
        http_version: str,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        extra_headers: Headers,
        max_body_size: int,
        root_path: str,
        state: dict[str, object] | None,
        body_timeout: float | None = None,
    ) -> None:
        self.http_version = http_version
        self.client = client
        self.server = server
        self.extra_headers = tuple(extra_headers)
        self.max_body_size = max_body_size
        #: Seconds to wait for the next piece of a request body (``None``:
        #: no limit); see :attr:`hcore_io.Limits.body_timeout`.
        self.body_timeout = body_timeout
        self.root_path = root_path
        self.state = state
        self.filter_headers = http_version != "1.1"


class Exchange(ResponseSender):
    """Runs an ASGI application for one request stream.

    :param stream: the request's stream (its headers already taken).
    :param headers: the request header block.
    :param end_stream: whether the request has no body.
    :param info: what the connection's exchanges share.
    """

    __slots__ = (
        "_body_done",
        "_expect_continue",
        "_head",
        "_info",
        "_method",
        "_path",
        "_received",
        "_request_complete",
        "_start",
        "_stream",
        "may_be_websocket",
        "scope",
    )

    def __init__(
        self,
        stream: HTTPStream,
        headers: Headers,
        end_stream: bool,
        info: ConnectionInfo,
    ) -> None:
        self._stream = stream
        self._info = info
        self._body_done = end_stream
        self._request_complete = False
        self._response_started = False
        self._response_complete = False
        self._disconnected = False
        self._pending_head: list[tuple[bytes, bytes]] | None = None
        self._has_length = False
        self._trailers_expected = False
        self._body_sent = False
        self._waiting: anyio.CancelScope | None = None
        self._trailers: list[tuple[bytes, bytes]] = []
        self._received = 0
        self._bytes_sent = 0
        self._status = 0
        self._start = time.time()
        self._expect_continue = False
        self.scope: MutableMapping[str, object] | None = None
        #: Whether the request has the fields of a WebSocket request
        #: (``:protocol``, ``upgrade``): only such a request can be one
        #: (see :func:`hcore.websocket.is_websocket_request`).
        self.may_be_websocket = False
        fields: list[tuple[bytes, bytes]] = []
        has_host = False
        content_length = -1
        rest = headers
        # Every hcore protocol puts these four first, in this order: taken
        # at once, the loop below sees only the other fields.
        if len(headers) >= 4 and headers[0][0] == b":method":
            (_, method), (n1, scheme), (n2, authority), (n3, path) = headers[:4]
            if n1 == b":scheme" and n2 == b":authority" and n3 == b":path":
                rest = headers[4:]
            else:
                method = path = authority = scheme = b""
        else:
            method = path = authority = scheme = b""
        for field in rest:
            name, value = field
            if name[:1] == b":":
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                elif name == b":authority":
                    authority = value
                elif name == b":scheme":
                    scheme = value
                elif name == b":protocol":
                    self.may_be_websocket = True
                continue
            fields.append(field)
            if name == b"host":
                has_host = True
            elif name == b"expect":
                self._expect_continue = value.lower() == b"100-continue"
            elif name == b"content-length" and value.isdigit():
                content_length = int(value)
            elif name == b"upgrade":
                self.may_be_websocket = True
        self._method = _METHODS.get(method) or method.decode("latin-1")
        self._path = path
        self._head = method == b"HEAD"
        if self._body_done:
            self._expect_continue = False
        if not path or not method or method == b"CONNECT":
            return
        if content_length > info.max_body_size:
            return
        if authority and not has_host:
            fields.insert(0, (b"host", authority))
        raw_path, _, query = path.partition(b"?")
        decoded = raw_path.decode("latin-1")
        if "%" in decoded:
            decoded = unquote(decoded)
        self.scope = {
            "type": "http",
            "asgi": _ASGI_VERSION,
            "http_version": info.http_version,
            "method": self._method,
            "scheme": _SCHEMES.get(scheme) or scheme.decode("latin-1"),
            "path": decoded,
            "raw_path": raw_path,
            "query_string": query,
            "root_path": info.root_path,
            "headers": fields,
            "client": info.client,
            "server": info.server,
            "extensions": {"http.response.trailers": {}},
        }
        if info.state is not None:
            self.scope["state"] = dict(info.state)

    @property
    def _target(self) -> str:
        # The request target, for the logs (decoded only when one is written).
        return self._path.decode("latin-1")

    # -- running -----------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        """Run the application (or answer an unservable request), then finish."""
        try:
            if self.scope is None:
                await self._refuse()
                return
            try:
                await app(self.scope, self.receive, self.send)
            except ClientDisconnected:
                if not self._disconnected:
                    logger.exception("ASGI application failed")
            except Exception:
                logger.exception(
                    "ASGI application failed on %s %s", self._method, self._target
                )
            if not self._response_started:
                if not self._disconnected:
                    await self._simple(500, b"Internal Server Error\n")
            elif not self._response_complete and not self._disconnected:
                await self._abort()
        finally:
            await self._stream.aclose()
            if access_logger.isEnabledFor(logging.INFO):
                self._log()

    async def _refuse(self) -> None:
        if self._method == "CONNECT":
            await self._simple(405, b"Method Not Allowed\n", ((b"allow", b"GET"),))
        elif not self._path or not self._method:
            await self._simple(400, b"Bad Request\n")
        else:
            await self._simple(413, b"Content Too Large\n")

    async def _simple(self, status: int, body: bytes, extra: Headers = ()) -> None:
        """Send a whole plain-text response, unless the client is gone."""
        self._response_started = True
        self._status = status
        head = [
            (b":status", b"%d" % status),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
            *extra,
            *self._info.extra_headers,
        ]
        try:
            if self._head:
                await self._stream.send_headers(head, end_stream=True)
            else:
                await self._stream.send_headers_and_data(head, body, end_stream=True)
                self._bytes_sent += len(body)
            self._response_complete = True
        except (*_SEND_ERRORS, HCoreError):
            self._disconnected = True

    async def _abort(self) -> None:
        try:
            await self._stream.send_stream_reset(
                self._stream.connection.error_codes.internal_error
            )
        except (*_SEND_ERRORS, HCoreError):
            pass
        self._disconnected = True

    def _log(self) -> None:
        client = self._info.client
        host = client[0] if client is not None else "-"
        when = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(self._start))
        size = str(self._bytes_sent) if self._bytes_sent else "-"
        access_logger.info(
            '%s - - [%s] "%s %s HTTP/%s" %d %s',
            host,
            when,
            self._method,
            self._target,
            self._info.http_version,
            self._status,
            size,
        )

    # -- receive -------------------------------------------------------------------

    async def receive(self) -> Message:
        """ASGI ``receive``: the next body piece, or ``http.disconnect``."""
        if self._disconnected or (self._response_complete and self._request_complete):
            return _DISCONNECT
        if self._request_complete:
            await self._wait_for_disconnect()
            return _DISCONNECT
        if self._expect_continue:
            self._expect_continue = False
            if not self._response_started:
                try:
                    await self._stream.send_headers(_CONTINUE)
                except _SEND_ERRORS:
                    self._disconnected = True
                    return _DISCONNECT
        if self._body_done:
            self._request_complete = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # Bounded: each round takes an event the client sent.
        while True:
            try:
                event = await self._next_event(self._info.body_timeout)
            except ReadTimeout:
                await self._too_slow()
                return _DISCONNECT
            if isinstance(event, DataReceived):
                self._received += len(event.data)
                if self._received > self._info.max_body_size:
                    await self._too_large()
                    return _DISCONNECT
                if event.end_stream:
                    self._body_done = self._request_complete = True
                return {
                    "type": "http.request",
                    "body": event.data,
                    "more_body": not event.end_stream,
                }
            if isinstance(event, TrailersReceived):
                self._body_done = self._request_complete = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if event is None or isinstance(event, _GONE):
                self._disconnected = True
                return _DISCONNECT

    async def _next_event(self, limit: float | None) -> Event | None:
        """The stream's next event, or ``None`` once nothing more will come.

        :raises ReadTimeout: if nothing came within ``limit`` seconds.
        """
        try:
            return await self._stream.receive_event(timeout=limit)
        except ReadTimeout:
            raise
        except HCoreError:
            # The connection is over (ConnectionClosed), or the stream is
            # finished both ways: either way nothing more will come.
            return None

    async def _wait_for_disconnect(self) -> None:
        """Wait until the client goes away or the response is complete.

        Applications cancel this wait as a matter of course (Starlette's
        ``is_disconnected()`` calls ``receive()`` in a cancelled scope, its
        streaming responses cancel a task waiting here).  An
        :class:`HTTPStream` whose receive is cancelled from outside gives its
        stream up (a reset), so the stream is read only in a shielded scope,
        in slices ended by its own timeout (which leaves the stream as it
        was), and the application's cancellation lands between slices.
        """
        # Bounded by the client going away, the response's end, or the
        # application's cancellation.
        while not self._disconnected and not self._response_complete:
            await anyio.lowlevel.checkpoint_if_cancelled()
            with anyio.CancelScope(shield=True) as scope:
                self._waiting = scope
                try:
                    event: Event | None = await self._stream.receive_event(
                        timeout=_DISCONNECT_POLL
                    )
                except ReadTimeout:
                    continue
                except HCoreError:
                    event = None
            self._waiting = None
            if scope.cancel_called:
                # Woken by _completed(): the stream is finished, so the
                # cancelled receive gave nothing up.
                return
            if event is None or isinstance(event, _GONE):
                self._disconnected = True

    async def _too_slow(self) -> None:
        # A body dribbled slower than body_timeout (slowloris on the body):
        # 408 (RFC 9110 §15.5.9), and the stream is given up.
        logger.info(
            "request body of %s %s: nothing for %s s",
            self._method,
            self._target,
            self._info.body_timeout,
        )
        await self._give_up(408, b"Request Timeout\n")

    async def _too_large(self) -> None:
        logger.info(
            "request body of %s %s larger than %d bytes",
            self._method,
            self._target,
            self._info.max_body_size,
        )
        await self._give_up(413, b"Content Too Large\n")

    async def _give_up(self, status: int, body: bytes) -> None:
        """Answer ``status`` (or reset a response begun), refuse the rest."""
        if not self._response_started:
            await self._simple(status, body)
        else:
            await self._abort()
        # The rest of the body is unwanted: stop the client sending it.
        if not self._disconnected:
            try:
                await self._stream.send_stream_reset(
                    self._stream.connection.error_codes.no_error
                    if self._response_complete
                    else self._stream.connection.error_codes.cancel
                )
            except (*_SEND_ERRORS, HCoreError):
                pass
        self._disconnected = True
