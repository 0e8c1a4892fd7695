"""Server-Sent Events over a :class:`~hcore_io.client.Client`: ``client.sse(url)``.

Theory of operation
-------------------

An :class:`EventSource` follows the HTML standard's ``EventSource``
processing model (HTML §9.2.3) on top of the client's requests, with the
sans-IO :class:`~hcore.sse.EventSourceState` doing the bookkeeping:

1. *Connect*: a ``GET`` with ``Accept: text/event-stream``,
   ``Cache-Control: no-store`` and, once an event carried an ID,
   ``Last-Event-ID``.  Redirects are followed as the client does.
2. *Check the response*: ``200`` with a ``text/event-stream`` content type
   opens the stream.  ``204 No Content`` is the server's way to say "stop":
   the iteration ends.  Anything else *fails the connection*: raises
   :exc:`EventSourceError`, with no reconnection.
3. *Read*: body pieces go through the parser, cut anywhere; each completed
   event is yielded.
4. *Reconnect*: when the body ends, or the network fails on the way (a
   connection error, a reset, a timeout), the current stream's incomplete
   event is dropped and, after the reconnection delay (the server's last
   ``retry:``, else ``retry_delay``), step 1 starts again with the last
   event ID.  Browsers reconnect forever; ``max_reconnects`` bounds it.
   Once it is used up, a stream that ended ends the iteration and a failure
   is raised.

The iteration is a plain ``__anext__`` (no async generator), so leaving an
``async for`` early and closing the source from any task are both safe.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypedDict

import anyio

from hcore import HCoreError, RemoteProtocolError
from hcore.sse import (
    DEFAULT_MAX_EVENT_SIZE,
    DEFAULT_MAX_LINE_SIZE,
    DEFAULT_RETRY_DELAY,
    EventSourceState,
    EventStreamError,
    ServerSentEvent,
)
from hcore_io._exceptions import NetworkError, TimeoutError
from hcore_io.client._models import URL, Response, Timeouts

if TYPE_CHECKING:
    from hcore_io.client._client import Client

__all__ = ("EventSource", "EventSourceError", "EventSourceOptions")


class EventSourceOptions(TypedDict, total=False):
    """The keyword arguments of :class:`EventSource` (and ``Client.sse``)."""

    headers: Sequence[tuple[bytes, bytes]]
    last_event_id: str | None
    retry_delay: float
    max_reconnects: int | None
    timeouts: Timeouts | None
    max_line_size: int
    max_event_size: int


class EventSourceError(HCoreError):
    """The server's answer is not an event stream (HTML: fail the connection).

    Raised for a status other than ``200`` and ``204``, or a ``200`` whose
    content type is not ``text/event-stream``.  There is no reconnection.
    """

    def __init__(self, message: str, *, status: int, content_type: str) -> None:
        super().__init__(message)
        #: The status of the response.
        self.status = status
        #: Its ``content-type`` field (``""`` when it had none).
        self.content_type = content_type


def _reconnects_after(error: BaseException) -> bool:
    """Whether a failure is a network error the standard reconnects after."""
    return isinstance(error, NetworkError | TimeoutError | RemoteProtocolError)


class EventSource:
    """An event stream that reconnects: ``async for event in source``.

    Made by :meth:`Client.sse <hcore_io.client.Client.sse>`; use it as an
    async context manager so that the current response is closed at the end::

        async with client.sse("https://example.com/events") as events:
            async for event in events:
                print(event.event, event.data)

    Nothing is sent before the first step of the iteration.

    :param client: the client to send the requests with.
    :param url: the stream's URL.
    :param headers: more fields for every request (after the SSE ones).
    :param last_event_id: the ID to resume after (``Last-Event-ID`` on the
        first request too).
    :param retry_delay: seconds to wait before reconnecting, until the
        server sets another delay with ``retry:``.
    :param max_reconnects: reconnections allowed over the source's life;
        ``None`` (as browsers do) for no bound.
    :param timeouts: the requests' timeouts (the client's if ``None``); a
        read timeout counts as a failed connection, so it reconnects: servers
        keep a quiet stream alive with comments.
    :param max_line_size: longest line accepted, in characters.
    :param max_event_size: most data one event may gather, in characters.
    :raises ValueError: if a value is out of range.
    """

    def __init__(
        self,
        client: Client,
        url: str | URL,
        *,
        headers: Sequence[tuple[bytes, bytes]] = (),
        last_event_id: str | None = None,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        max_reconnects: int | None = None,
        timeouts: Timeouts | None = None,
        max_line_size: int = DEFAULT_MAX_LINE_SIZE,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        if max_reconnects is not None and (
            type(max_reconnects) is not int or max_reconnects < 0
        ):
            raise ValueError("max_reconnects must be None or an int >= 0")
        self._client = client
        self._url = url if isinstance(url, URL) else URL(url)
        self._headers = tuple((name.lower(), value) for name, value in headers)
        self._timeouts = timeouts
        self._max_reconnects = max_reconnects
        self._state = EventSourceState(
            retry_delay=retry_delay,
            last_event_id=last_event_id,
            max_line_size=max_line_size,
            max_event_size=max_event_size,
        )
        self._response: Response | None = None
        self._pending: deque[ServerSentEvent] = deque()
        self._failure: BaseException | None = None
        self._closed = False
        #: Requests sent so far (the first connection and each reconnection).
        self.connections = 0

    @property
    def url(self) -> URL:
        """The stream's URL."""
        return self._url

    @property
    def last_event_id(self) -> str | None:
        """The last event ID seen (sent as ``Last-Event-ID`` on reconnecting)."""
        return self._state.last_event_id

    @property
    def retry_delay(self) -> float:
        """The current reconnection delay, in seconds."""
        return self._state.retry_delay

    @property
    def response(self) -> Response | None:
        """The response being read, if a stream is open."""
        return self._response

    @property
    def closed(self) -> bool:
        """Whether it stopped for good (closed, ``204``, or out of reconnects)."""
        return self._closed

    async def aclose(self) -> None:
        """Stop: close the current response; the iteration ends."""
        self._closed = True
        self._pending.clear()
        await self._close_response()

    async def __aenter__(self) -> EventSource:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> EventSource:
        return self

    async def __anext__(self) -> ServerSentEvent:
        """Return the next event, connecting and reconnecting as needed.

        :raises StopAsyncIteration: after :meth:`aclose`, a ``204``, or a
            stream that ended with no reconnection left.
        :raises EventSourceError: if a response is not an event stream.
        :raises hcore.sse.EventStreamError: past a size limit.
        :raises hcore_io.NetworkError: (or a timeout) if the last allowed
            connection failed.
        """
        # Bounded by the stream: each turn reads a piece, or (re)connects,
        # which max_reconnects bounds when it is set.
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            if self._response is None:
                await self._connect()
                continue
            try:
                chunk = await self._response.stream.read_chunk()
            except Exception as exc:
                if not _reconnects_after(exc):
                    await self.aclose()
                    raise
                await self._stream_ended(exc)
                continue
            if chunk is None:
                await self._stream_ended(None)
                continue
            try:
                self._pending.extend(self._state.feed(chunk))
            except EventStreamError:
                await self.aclose()
                raise
        return self._pending.popleft()

    async def _connect(self) -> None:
        if self.connections:
            if (
                self._max_reconnects is not None
                and self.connections > self._max_reconnects
            ):
                # HTML §9.2.3 would reconnect again; the caller said no more.
                failure, self._failure = self._failure, None
                await self.aclose()
                if failure is not None:
                    raise failure
                return
            await anyio.sleep(self._state.retry_delay)
        self.connections += 1
        request = self._client.build_request(
            "GET",
            self._url,
            headers=self._state.request_headers(self._headers),
            timeouts=self._timeouts,
        )
        try:
            response = await self._client.send(request)
        except Exception as exc:
            if not _reconnects_after(exc):
                await self.aclose()
                raise
            self._failure = exc
            return
        self._failure = None
        if response.status == 204:
            # HTML §9.2: "204 No Content" tells the client to stop.
            await response.aclose()
            await self.aclose()
            return
        if not self._state.check_response(response.status, response.headers):
            await response.aclose()
            await self.aclose()
            content_type = (response.get_header(b"content-type") or b"").decode(
                "latin-1"
            )
            raise EventSourceError(
                f"{response.url} answered {response.status} "
                f"({content_type or 'no content type'}), not an event stream",
                status=response.status,
                content_type=content_type,
            )
        self._response = response

    async def _stream_ended(self, failure: BaseException | None) -> None:
        self._failure = failure
        await self._close_response()
        # The incomplete event is dropped; ID and delay carry over.
        self._state.stream_ended()

    async def _close_response(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            await response.aclose()
