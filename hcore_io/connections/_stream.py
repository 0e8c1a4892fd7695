"""HTTPStream: one exchange of a connection, used by one task.

Many tasks can each hold an :class:`HTTPStream` of the same HTTP/2 or HTTP/3
connection and send and receive at the same time; each receives only its
own stream's events.  Cancelling a task while it waits on its stream resets
that stream (``cancel``) and leaves the connection to the others.  A timeout
given to a method does not: it raises :class:`~hcore_io.ReadTimeout` or
:class:`~hcore_io.WriteTimeout` and the stream stays as it was, for the
caller to retry, reset or close.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import anyio

from hcore import HCoreError, Headers
from hcore.events import Event
from hcore_io._exceptions import ReadTimeout, TimeoutError, WriteTimeout
from hcore_io.connections._state import DeadlinePassed, StreamState

if TYPE_CHECKING:
    from hcore_io.connections._connection import HTTPConnection

__all__ = ("HTTPStream", "StreamReset", "timed")

_T = TypeVar("_T")


class StreamReset(HCoreError):
    """A stream was reset (or refused by the peer's GOAWAY) and cannot send.

    Raised by :meth:`HTTPStream.send_headers` and :meth:`HTTPStream.send_data`;
    the stream's receiver gets the matching event
    (:class:`~hcore.events.StreamResetReceived`, or
    :class:`~hcore.events.GoawayReceived` for a refused stream).
    """

    def __init__(
        self, stream_id: int, error_code: int | None, *, by_peer: bool
    ) -> None:
        """:param stream_id: the stream.

        :param error_code: the reset's code; ``None`` when the peer refused
            the stream by GOAWAY.
        :param by_peer: whether the peer reset it.
        """
        if error_code is None:
            reason = "was not processed by the peer (GOAWAY)"
        else:
            who = "the peer" if by_peer else "this side"
            reason = f"was reset by {who} (error code {error_code:#x})"
        super().__init__(f"stream {stream_id} {reason}")
        #: The stream.
        self.stream_id = stream_id
        #: The reset's error code, ``None`` for a stream refused by GOAWAY.
        self.error_code = error_code
        #: Whether the peer reset (or refused) it.
        self.by_peer = by_peer or error_code is None


async def timed(
    operation: Callable[[], Awaitable[_T]],
    timeout: float | None,  # noqa: ASYNC109 (see module doc)
    what: str,
    error: type[TimeoutError] = WriteTimeout,
) -> _T:
    """Run ``operation()``, raising ``error`` if it takes longer than ``timeout``."""
    if timeout is None:
        return await operation()
    with anyio.move_on_after(timeout):
        return await operation()
    raise error(f"{what} took longer than {timeout} s")


class HTTPStream:
    """One request/response exchange on an :class:`HTTPConnection`.

    Made by :meth:`HTTPConnection.open_stream` (the request headers already
    sent) and :meth:`HTTPConnection.accept_stream` (the request headers
    waiting first in :meth:`receive_event`).  Iterating over it gives its
    events until the peer's side of the stream ends.  Use it as an async
    context manager, or call :meth:`aclose`, to stop following it: a stream
    still going is then reset.
    """

    def __init__(self, connection: HTTPConnection, state: StreamState) -> None:
        """Made by the connection; not meant to be called directly."""
        self._connection = connection
        self._state = state

    def __repr__(self) -> str:
        return f"<HTTPStream {self._state.stream_id} of {self._connection!r}>"

    @property
    def stream_id(self) -> int:
        """The stream's id."""
        return self._state.stream_id

    @property
    def connection(self) -> HTTPConnection:
        """The connection the stream belongs to."""
        return self._connection

    @property
    def ended(self) -> bool:
        """Whether the stream is over both ways (or was reset) and fully read."""
        return self._state.finished and not self._state.events

    async def send_headers(
        self,
        headers: Headers,
        end_stream: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (see module doc)
    ) -> None:
        """Send a header block: the response (or a 1xx) on a server, or trailers.

        :param headers: the block, pseudo-headers first.
        :param end_stream: whether nothing more will be sent.
        :param timeout: seconds the write may take.
        :raises StreamReset: if the stream was reset.
        :raises hcore_io.ConnectionClosed: if the connection is closed.
        :raises hcore_io.WriteError: if writing failed.
        :raises hcore_io.WriteTimeout: if ``timeout`` passed.
        :raises hcore.LocalProtocolError: if the protocol refuses the block.
        """
        if timeout is None:
            # The common case, without _guard's closure and scope: no
            # scope of its own, so any cancellation comes from outside, and
            # the task gives the stream up.
            try:
                await self._connection._stream_send_headers(
                    self._state, headers, end_stream
                )
            except anyio.get_cancelled_exc_class():
                await self._connection._abandon(self._state)
                raise
            return
        await self._guard(
            lambda: self._connection._stream_send_headers(
                self._state, headers, end_stream
            ),
            timeout,
            "sending headers",
            WriteTimeout,
        )

    async def send_data(
        self,
        data: bytes,
        end_stream: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (see module doc)
    ) -> None:
        """Send body bytes; wait while the peer's flow control holds them back.

        :param data: the bytes; may be empty to only end the stream.
        :param end_stream: whether nothing more will be sent.
        :param timeout: seconds the write (and the wait for credit) may take.
        :raises StreamReset: if the stream was (or is, meanwhile) reset.
        :raises hcore_io.ConnectionClosed: if the connection is closed.
        :raises hcore_io.WriteError: if writing failed.
        :raises hcore_io.WriteTimeout: if ``timeout`` passed.
        """
        if timeout is None:
            # The common case, as in send_headers.
            try:
                await self._connection._stream_send_data(self._state, data, end_stream)
            except anyio.get_cancelled_exc_class():
                await self._connection._abandon(self._state)
                raise
            return
        await self._guard(
            lambda: self._connection._stream_send_data(self._state, data, end_stream),
            timeout,
            "sending data",
            WriteTimeout,
        )

    async def send_headers_and_data(
        self,
        headers: Headers,
        data: bytes,
        end_stream: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (see module doc)
    ) -> None:
        """Send a header block and the first body bytes, in one write.

        As :meth:`send_headers` (not ending the stream) then
        :meth:`send_data`, except that both leave together: a small response
        (or request) goes out in one segment.

        :param headers: the block, pseudo-headers first.
        :param data: the body bytes (or the tunnel's first bytes).
        :param end_stream: whether nothing more will be sent.
        :param timeout: seconds the write (and the wait for credit) may take.
        :raises StreamReset: if the stream was (or is, meanwhile) reset.
        :raises hcore_io.ConnectionClosed: if the connection is closed.
        :raises hcore_io.WriteError: if writing failed.
        :raises hcore_io.WriteTimeout: if ``timeout`` passed.
        :raises hcore.LocalProtocolError: if the protocol refuses the block.
        """
        if timeout is None:
            # The common case, as in send_headers.
            try:
                await self._connection._stream_send_headers_and_data(
                    self._state, headers, data, end_stream
                )
            except anyio.get_cancelled_exc_class():
                await self._connection._abandon(self._state)
                raise
            return
        await self._guard(
            lambda: self._connection._stream_send_headers_and_data(
                self._state, headers, data, end_stream
            ),
            timeout,
            "sending headers and data",
            WriteTimeout,
        )

    async def send_stream_reset(self, error_code: int | None = None) -> None:
        """Abandon the stream (on HTTP/1.1 this closes the connection).

        :param error_code: a code from the connection's ``error_codes``;
            ``cancel`` if omitted.
        """
        await self._connection._stream_reset(self._state, error_code)

    async def receive_event(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (see module doc)
    ) -> Event:
        """Receive the stream's next event.

        After the peer's last event this still waits, for as long as this
        side has not ended the stream: a reset may come (a client cancelling
        while the server works on its answer).  Iterating over the stream
        stops at the peer's last event instead.

        :param timeout: seconds to wait.
        :return: a ``HeadersReceived``, ``InformationalResponseReceived``,
            ``DataReceived``, ``TrailersReceived``, ``StreamResetReceived``,
            ``StreamResetSent``, or the ``GoawayReceived`` that refused it.
        :raises hcore_io.ConnectionClosed: if the connection ended first.
        :raises hcore_io.ReadTimeout: if ``timeout`` passed.
        :raises hcore.LocalProtocolError: if the stream was closed, or is
            over both ways and every event was received.
        """
        connection, state = self._connection, self._state
        if state.events.cost:
            event = connection._stream_take(state)
            if event is not None:
                # Already queued: no wait, so no timeout or cancellation.
                return event
        # The timeout is a deadline for the connection's wait, which bounds
        # its read with the read's own cancel scope: no scope of its own
        # here, so any cancellation comes from outside.
        deadline = (
            math.inf if timeout is None else connection._read_timer.now() + timeout
        )
        try:
            return await connection._stream_receive(state, deadline)
        except DeadlinePassed:
            raise ReadTimeout(
                f"receiving an event on stream {state.stream_id} "
                f"took longer than {timeout} s"
            ) from None
        except anyio.get_cancelled_exc_class():
            # Cancelled from outside: the task gives the stream up.
            await connection._abandon(state)
            raise

    def receive_event_nowait(self) -> Event | None:
        """The stream's next event if it is queued already, else ``None``.

        No wait, so no timeout and no cancellation.  ``None`` also when the
        connection has something to do first (events held back, a close):
        :meth:`receive_event` does it.
        """
        return self._connection._stream_take(self._state)

    def __aiter__(self) -> HTTPStream:
        return self

    async def __anext__(self) -> Event:
        """Receive the next event; stop after the peer's last one.

        :raises hcore_io.ConnectionClosed: if the connection ended first.
        """
        state = self._state
        if state.done_receiving and not state.events:
            if state.lost:
                raise self._connection._closed_error()
            raise StopAsyncIteration
        return await self.receive_event()

    async def aclose(self) -> None:
        """Stop following the stream, resetting it if it is still going."""
        await self._connection._stream_close(self._state)

    async def __aenter__(self) -> HTTPStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _guard(
        self,
        operation: Callable[[], Awaitable[_T]],
        timeout: float,  # noqa: ASYNC109 (see module doc)
        what: str,
        error: type[TimeoutError],
    ) -> _T:
        # (timeout=None is done inline, without this closure and scope.)
        with anyio.move_on_after(timeout) as scope:
            try:
                return await operation()
            except anyio.get_cancelled_exc_class():
                if not scope.cancel_called:
                    # Cancelled from outside: the task gives the stream up.
                    await self._connection._abandon(self._state)
                raise
        raise error(
            f"{what} on stream {self._state.stream_id} took longer than {timeout} s"
        )
