"""The client's WebSocket: messages both ways over one HTTP stream.

Theory of operation
-------------------
A :class:`WebSocket` is made by :meth:`hcore_io.client.Client.websocket`
once the opening handshake succeeded (see :mod:`._websocket_open`); it
owns the stream and a :class:`~hcore.websocket.WebSocketSession`.  A reader
task, in the task group of the ``async with`` block, reads the stream,
feeds the session and queues whole messages for :meth:`WebSocket.receive`
(a few at most: a caller that stops reading holds the reader back, and the
server with it, through flow control).  So cancelling ``receive()`` (a
timeout, say) loses nothing and leaves the stream alone.  Sends, and the
reader's own answers (Pongs, the echo of the server's Close), are written
under one lock, so frames leave whole and in order.

Closing: :meth:`WebSocket.close` (or leaving the block) sends a Close and
waits for the server's; the server's Close is echoed at once.  Then the
stream ends: on HTTP/2 and HTTP/3 both sides send END_STREAM (RFC 8441
§5); on HTTP/1.1 the client waits for the server to close the connection
(RFC 6455 §7.1.1) and closes it itself after ``close_timeout``.  Bad input
from the server makes the session close with 1002, 1007 or 1009
(:attr:`WebSocket.close_code`), and :meth:`~WebSocket.receive` raises
:class:`WebSocketClosed`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from hcore import HCoreError, Headers
from hcore.events import DataReceived, Event
from hcore.websocket import (
    BytesMessage,
    CloseReceived,
    PongReceived,
    SessionState,
    SessionTerminated,
    TextMessage,
    WebSocketSession,
)
from hcore_io._exceptions import NetworkError
from hcore_io.connections import HTTPStream

__all__ = ("WebSocket", "WebSocketClosed", "WebSocketError", "WebSocketRejected")

_STREAM_ERRORS = (HCoreError, NetworkError)
# Whole messages queued for receive() before the reader waits.
_QUEUED_MESSAGES = 4
# RFC 6455 §7.1.5: the code when the stream ended without a Close frame.
_ABNORMAL = 1006
# Close codes after which iteration simply stops (RFC 6455 §7.4.1).
_NORMAL_CODES = frozenset((1000, 1001, 1005))


class WebSocketError(HCoreError):
    """Base class of the client's WebSocket errors."""


class WebSocketRejected(WebSocketError):
    """The server did not open the WebSocket: it answered with a response.

    :param status: the response status (0 if it broke RFC 6455).
    :param reason: why this is not an acceptance.
    :param headers: the response header fields.
    :param body: the start of the response body (at most 64 KiB).
    """

    def __init__(self, status: int, reason: str, headers: Headers, body: bytes) -> None:
        super().__init__(f"WebSocket refused: {reason}")
        #: The response status.
        self.status = status
        #: The response header fields.
        self.headers = headers
        #: The start of the response body.
        self.body = body


class WebSocketClosed(WebSocketError):
    """The WebSocket is closed: nothing more can be sent or received.

    :param code: the close code (RFC 6455 §7.4): the server's, the one a
        failure was closed with, or 1006 when the stream just ended.
    :param reason: the close reason.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"the WebSocket is closed ({code} {reason})".rstrip())
        #: The close code.
        self.code = code
        #: The close reason.
        self.reason = reason


class WebSocket:
    """An open WebSocket (made by :meth:`hcore_io.client.Client.websocket`).

    :meth:`send_text`, :meth:`send_bytes`, :meth:`receive`, :meth:`ping`
    and :meth:`close`; ``async for message in ws`` receives until the
    WebSocket closes (normally: a failure raises :class:`WebSocketClosed`).
    """

    def __init__(
        self,
        stream: HTTPStream,
        session: WebSocketSession,
        *,
        subprotocol: str | None,
        headers: Headers,
        close_timeout: float,
    ) -> None:
        """Made by the client; not meant to be called directly."""
        self._stream = stream
        self._session = session
        self._subprotocol = subprotocol
        self._headers = headers
        self._close_timeout = close_timeout
        self._multiplexed = stream.connection.multiplexed
        self._send_lock = anyio.Lock()
        sender, receiver = anyio.create_memory_object_stream[str | bytes](
            _QUEUED_MESSAGES
        )
        self._messages_out: MemoryObjectSendStream[str | bytes] = sender
        self._messages_in: MemoryObjectReceiveStream[str | bytes] = receiver
        self._pings: dict[bytes, anyio.Event] = {}
        self._done = anyio.Event()
        self._close_code: int | None = None
        self._close_reason = ""

    # -- what was agreed -------------------------------------------------------------

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose, if any."""
        return self._subprotocol

    @property
    def http_version(self) -> str:
        """The HTTP version the WebSocket runs over: ``"1.1"``, ``"2"`` or ``"3"``."""
        return self._stream.connection.http_version

    @property
    def response_headers(self) -> Headers:
        """The handshake response's header fields (no pseudo-headers)."""
        return self._headers

    @property
    def close_code(self) -> int | None:
        """The close code once closed (see :class:`WebSocketClosed`), else ``None``."""
        return self._close_code

    @property
    def close_reason(self) -> str:
        """The close reason once closed, else empty."""
        return self._close_reason

    @property
    def closed(self) -> bool:
        """Whether the closing handshake is over (or the WebSocket failed)."""
        return self._session.state is SessionState.CLOSED

    def _closed_error(self) -> WebSocketClosed:
        code = self._close_code
        return WebSocketClosed(_ABNORMAL if code is None else code, self._close_reason)

    # -- sending ---------------------------------------------------------------------

    async def send_text(self, data: str) -> None:
        """Send a text message.

        :raises WebSocketClosed: if the WebSocket is closing or closed.
        """
        async with self._send_lock:
            self._check_open()
            self._session.send_text(data)
            await self._flush()

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message.

        :raises WebSocketClosed: if the WebSocket is closing or closed.
        """
        async with self._send_lock:
            self._check_open()
            self._session.send_bytes(data)
            await self._flush()

    async def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message.

        :raises WebSocketClosed: if the WebSocket is closing or closed.
        """
        if isinstance(data, str):
            await self.send_text(data)
        else:
            await self.send_bytes(data)

    async def ping(self, payload: bytes | None = None) -> float:
        """Send a Ping and wait for its Pong.

        :param payload: at most 125 bytes; 4 random bytes if omitted.
        :return: the round trip, in seconds.
        :raises WebSocketClosed: if the WebSocket closed first.
        """
        data = os.urandom(4) if payload is None else payload
        answered = self._pings.setdefault(data, anyio.Event())
        started = anyio.current_time()
        async with self._send_lock:
            self._check_open()
            try:
                self._session.send_ping(data)
            except HCoreError as exc:
                raise ValueError(str(exc)) from exc
            await self._flush()
        await answered.wait()
        if data in self._pings:
            # Woken by the end, not by a Pong.
            raise self._closed_error()
        return anyio.current_time() - started

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake and wait for it to finish.

        Returns at once if the WebSocket is closed already; gives up waiting
        for the server after ``close_timeout``.

        :param code: the close code (RFC 6455 §7.4.1, or 3000-4999).
        :param reason: at most 123 bytes of UTF-8.
        :raises ValueError: for a code that may not be sent or a long reason.
        """
        async with self._send_lock:
            if self._session.state is SessionState.OPEN:
                try:
                    self._session.send_close(code, reason)
                except HCoreError as exc:
                    raise ValueError(str(exc)) from exc
                try:
                    await self._flush()
                except WebSocketClosed:
                    pass
        with anyio.move_on_after(self._close_timeout):
            await self._done.wait()

    def _check_open(self) -> None:
        if self._session.state is not SessionState.OPEN:
            raise self._closed_error()

    async def _flush(self) -> None:
        """Write what the session queued (the send lock is held)."""
        data = self._session.data_to_send()
        if not data:
            return
        try:
            await self._stream.send_data(data)
        except _STREAM_ERRORS as exc:
            self._session.receive_eof()
            self._take_events_after_failure()
            raise self._closed_error() from exc

    def _take_events_after_failure(self) -> None:
        for event in self._session.events():
            if isinstance(event, CloseReceived | SessionTerminated):
                self._note_close(event.code, event.reason)

    # -- receiving -------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """Wait for the next message.

        :return: a text message as ``str``, a binary one as ``bytes``.
        :raises WebSocketClosed: once the WebSocket is closed and every
            message received before was taken.
        """
        try:
            return await self._messages_in.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise self._closed_error() from None

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self

    async def __anext__(self) -> str | bytes:
        """The next message; stops when the WebSocket closes normally.

        :raises WebSocketClosed: if it closed with an error code.
        """
        try:
            return await self.receive()
        except WebSocketClosed as exc:
            if exc.code in _NORMAL_CODES:
                raise StopAsyncIteration from None
            raise

    # -- the reader ------------------------------------------------------------------

    def _note_close(self, code: int, reason: str) -> None:
        if self._close_code is None:
            self._close_code, self._close_reason = code, reason

    async def _next_event(self) -> Event | None:
        try:
            return await self._stream.receive_event()
        except _STREAM_ERRORS:
            return None

    async def run_reader(self) -> None:
        """Read the stream until the WebSocket is over (the reader task)."""
        session = self._session
        try:
            # Bounded by what the server sends: every round takes an event.
            while session.state is not SessionState.CLOSED:
                event = await self._next_event()
                if isinstance(event, DataReceived):
                    session.receive_data(event.data)
                    if event.end_stream:
                        session.receive_eof()
                else:
                    # A reset, a GOAWAY that refused it, or the connection
                    # ended.
                    session.receive_eof()
                await self._deliver()
                # Pongs and the echo of a Close: taken before the lock, as a
                # send queues and takes its frames at once, under it; control
                # frames may go between them (RFC 6455 §5.4).
                answers = session.data_to_send()
                if answers:
                    async with self._send_lock:
                        try:
                            await self._stream.send_data(answers)
                        except _STREAM_ERRORS:
                            session.receive_eof()
            await self._deliver()
            self._note_close(_ABNORMAL, "")
            self._messages_out.close()
            await self._finish()
        finally:
            self._messages_out.close()
            for waiter in self._pings.values():
                waiter.set()
            self._done.set()

    async def _deliver(self) -> None:
        for event in self._session.events():
            if isinstance(event, TextMessage | BytesMessage):
                try:
                    await self._messages_out.send(event.data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass
            elif isinstance(event, PongReceived):
                waiter = self._pings.pop(event.payload, None)
                if waiter is not None:
                    waiter.set()
            elif isinstance(event, CloseReceived | SessionTerminated):
                self._note_close(event.code, event.reason)

    async def _finish(self) -> None:
        """After the closing handshake: end the stream (see the module doc)."""
        with anyio.move_on_after(self._close_timeout):
            try:
                if self._multiplexed:
                    # RFC 8441 §5: END_STREAM stands for TCP's FIN.
                    async with self._send_lock:
                        await self._stream.send_data(b"", end_stream=True)
                # Bounded: the server's side ends (HTTP/1.1: it closes the
                # connection), or the timeout.
                async for event in self._stream:
                    if isinstance(event, DataReceived) and event.end_stream:
                        break
            except _STREAM_ERRORS:
                pass

    async def aclose(self, code: int = 1000) -> None:
        """Close (if still open) and release the stream (used by the client)."""
        with anyio.CancelScope(shield=True):
            # Nobody reads any more: a reader waiting for room is let go.
            self._messages_in.close()
            try:
                await self.close(code)
            except _STREAM_ERRORS:
                pass
            await self._stream.aclose()
