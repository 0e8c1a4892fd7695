"""The frame pumping of a server WebSocket: stream bytes to and from the session.

:class:`FramePump` is the half of
:class:`~hcore_io.server._websocket.WebSocketExchange` that moves frames
once the WebSocket is accepted: the reader task feeds the stream's data to
the :class:`~hcore.websocket.WebSocketSession`, queues whole messages for
``receive()`` (a bounded queue: a slow application holds the reader back,
and the peer with it through flow control), writes the session's answers
(pongs, the echo of a Close) under the send lock, and ends the stream once
the closing handshake is over (RFC 6455 §7.1.1, RFC 8441 §5).  The ASGI
message handling stays in the exchange.

Once the server sent its Close (the application's, or a shutdown's 1001),
the reader waits ``close_timeout`` at most for the client's: past it the
WebSocket ends abnormally (1006), the stream is given up (on HTTP/1.1 the
connection closed) and ``receive()`` answers ``websocket.disconnect``, even
to an application still waiting in it.
"""

from __future__ import annotations

import logging
import math

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from hcore import HCoreError
from hcore.events import DataReceived, Event
from hcore.websocket import (
    BytesMessage,
    CloseReceived,
    SessionState,
    SessionTerminated,
    TextMessage,
    WebSocketSession,
)
from hcore_io._exceptions import NetworkError
from hcore_io.connections import HTTPStream, StreamReset
from hcore_io.server._response import ClientDisconnected
from hcore_io.server._types import Message
from hcore_io.server._websocket_scope import WebSocketOptions

__all__ = ("ABNORMAL", "STREAM_ERRORS", "FramePump")

logger = logging.getLogger("hcore.server")

#: What a stream's reads and writes raise when the peer or connection fails.
STREAM_ERRORS = (HCoreError, NetworkError)
#: RFC 6455 §7.1.5: the code when the stream ended without a Close frame.
ABNORMAL = 1006


class FramePump:
    """Moves a WebSocket's frames; the exchange initialises the state below."""

    _stream: HTTPStream
    _options: WebSocketOptions
    _multiplexed: bool
    _session: WebSocketSession | None
    _send_lock: anyio.Lock
    _messages_out: MemoryObjectSendStream[Message]
    _reader_done: anyio.Event
    _close_code: int
    _close_reason: str
    _target: str
    # When the client's Close is given up on (our Close was sent), and the
    # reader's scope that deadline applies to.
    _close_deadline: float = math.inf
    _reader_scope: anyio.CancelScope | None = None

    def _closing_started(self) -> None:
        """Our Close is sent: wait ``close_timeout`` at most for the client's."""
        deadline = anyio.current_time() + self._options.close_timeout
        if deadline < self._close_deadline:
            self._close_deadline = deadline
            if self._reader_scope is not None:
                self._reader_scope.deadline = deadline

    async def _flush(self, session: WebSocketSession) -> None:
        """Write what the session queued (the send lock is held)."""
        data = session.data_to_send()
        if not data:
            return
        try:
            await self._stream.send_data(data)
        except STREAM_ERRORS as exc:
            session.receive_eof()
            raise ClientDisconnected(f"the client went away: {exc}") from exc

    async def _next_event(self) -> Event | None:
        try:
            return await self._stream.receive_event()
        except STREAM_ERRORS:
            return None

    async def _read(self) -> None:
        session = self._session
        assert session is not None
        try:
            with anyio.CancelScope(deadline=self._close_deadline) as scope:
                self._reader_scope = scope
                # Bounded by what the client sends: every round takes an
                # event; and by the close deadline once our Close is out.
                while session.state is not SessionState.CLOSED:
                    event = await self._next_event()
                    if isinstance(event, DataReceived):
                        session.receive_data(event.data)
                        if event.end_stream:
                            session.receive_eof()
                    else:
                        # The stream ended otherwise: a reset, GOAWAY, or the
                        # connection closed.
                        session.receive_eof()
                    await self._deliver(session)
                    # Pongs and the echo of a Close: taken before the lock, as
                    # a send queues and takes its frames at once, under it;
                    # control frames may go between them (RFC 6455 §5.4).
                    answers = session.data_to_send()
                    if answers:
                        async with self._send_lock:
                            try:
                                await self._stream.send_data(answers)
                            except STREAM_ERRORS:
                                session.receive_eof()
            self._reader_scope = None
            if scope.cancelled_caught:
                # RFC 6455 §7.1.1: the client never answered our Close; the
                # WebSocket ends abnormally (1006) and the stream is given
                # up (reset by the exchange's close on HTTP/2 and HTTP/3).
                session.receive_eof()
                await self._deliver(session)
                if not self._multiplexed:
                    await self._stream.connection.aclose()
                return
            await self._deliver(session)
            await self._finish()
        finally:
            self._messages_out.close()
            self._reader_done.set()

    async def _deliver(self, session: WebSocketSession) -> None:
        for event in session.events():
            message: Message | None = None
            if isinstance(event, TextMessage):
                message = {"type": "websocket.receive", "text": event.data}
            elif isinstance(event, BytesMessage):
                message = {"type": "websocket.receive", "bytes": event.data}
            elif isinstance(event, CloseReceived):
                self._close_code = event.code
                self._close_reason = event.reason
            elif isinstance(event, SessionTerminated):
                self._close_code = event.code
                self._close_reason = event.reason
                if event.code != ABNORMAL:
                    logger.info(
                        "WebSocket %s failed: %d %s",
                        self._target,
                        event.code,
                        event.reason,
                    )
            if message is not None:
                try:
                    await self._messages_out.send(message)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    # The application returned: what it did not read is dropped.
                    pass

    async def _finish(self) -> None:
        """After the closing handshake (or a failure): end the stream."""
        if not self._multiplexed:
            # RFC 6455 §7.1.1: the server closes the TCP connection first.
            await self._stream.connection.aclose()
            return
        with anyio.move_on_after(self._options.close_timeout):
            try:
                # RFC 8441 §5: END_STREAM stands for TCP's FIN.
                async with self._send_lock:
                    await self._stream.send_data(b"", end_stream=True)
                # Bounded: the client's side ends (or the timeout).
                async for event in self._stream:
                    if isinstance(event, DataReceived) and event.end_stream:
                        break
            except (*STREAM_ERRORS, StreamReset):
                pass
