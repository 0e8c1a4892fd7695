"""The state an event-stream client keeps across reconnections (HTML §9.2.3).

An ``EventSource`` reconnects when its stream ends, after the reconnection
time (which the server may change with ``retry:``), sending the last event
ID it saw in ``Last-Event-ID`` so the server can resume.  This class holds
that state and the parser of the current connection; the caller does the
requests and the waiting.  A client loop::

    state = EventSourceState()
    while True:
        response = send(request_headers=state.request_headers())
        if not state.check_response(status, headers):
            break                               # HTML: fail, no reconnect
        for chunk in body:
            for event in state.feed(chunk):
                ...
        state.stream_ended()
        sleep(state.retry_delay)
"""

from __future__ import annotations

from hcore._types import Headers
from hcore.sse._parser import (
    DEFAULT_MAX_EVENT_SIZE,
    DEFAULT_MAX_LINE_SIZE,
    EventStreamParser,
    ServerSentEvent,
)

__all__ = ("DEFAULT_RETRY_DELAY", "EventSourceState")

#: The reconnection delay before a server sets one, in seconds (browsers
#: use a few seconds; the standard leaves it to the user agent).
DEFAULT_RETRY_DELAY = 3.0


class EventSourceState:
    """Last event ID, reconnection delay and the current stream's parser.

    :param retry_delay: the delay before reconnecting, in seconds, until the
        server sets another with ``retry:``.
    :param last_event_id: the ID to resume after, if any.
    :param max_line_size: passed to each :class:`EventStreamParser`.
    :param max_event_size: passed to each :class:`EventStreamParser`.
    :raises ValueError: if a value is out of range.
    """

    def __init__(
        self,
        *,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        last_event_id: str | None = None,
        max_line_size: int = DEFAULT_MAX_LINE_SIZE,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        if not isinstance(retry_delay, int | float) or not retry_delay >= 0:
            raise ValueError("retry_delay must be a number >= 0")
        if last_event_id is not None and (
            "\0" in last_event_id or "\r" in last_event_id or "\n" in last_event_id
        ):
            raise ValueError("last_event_id cannot hold NULL, CR or LF")
        self._retry_delay = float(retry_delay)
        self._last_event_id = last_event_id or ""
        self._limits = (max_line_size, max_event_size)
        self._parser = self._new_parser()

    def _new_parser(self) -> EventStreamParser:
        return EventStreamParser(
            last_event_id=self._last_event_id,
            max_line_size=self._limits[0],
            max_event_size=self._limits[1],
        )

    @property
    def last_event_id(self) -> str | None:
        """The last event ID seen, or ``None``."""
        return self._last_event_id or None

    @property
    def retry_delay(self) -> float:
        """How long to wait before reconnecting, in seconds."""
        return self._retry_delay

    def request_headers(self, headers: Headers = ()) -> Headers:
        """The headers to add to the (re)connecting GET request.

        :param headers: more headers to send (after these).
        :return: ``accept: text/event-stream``, ``cache-control: no-store``
            and, when an ID was seen, ``last-event-id`` (HTML §9.2.3).
        """
        out = [(b"accept", b"text/event-stream"), (b"cache-control", b"no-store")]
        if self._last_event_id:
            out.append((b"last-event-id", self._last_event_id.encode("utf-8")))
        return (*out, *headers)

    def check_response(self, status: int, headers: Headers) -> bool:
        """Whether a response opens an event stream (HTML §9.2.3).

        Only ``200`` with a ``text/event-stream`` content type does; for
        anything else (``204`` is how a server says "stop") the standard
        fails the connection without reconnecting.

        :param status: the response status (after redirects).
        :param headers: the response headers.
        :return: true to read the stream, false to stop for good.
        """
        if status != 200:
            return False
        content_type = next(
            (value for name, value in headers if name == b"content-type"), b""
        )
        essence = content_type.split(b";", 1)[0].strip().lower()
        return essence == b"text/event-stream"

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Parse the next bytes of the current stream.

        :param data: the next chunk of the response body.
        :return: the events it completed.
        :raises EventStreamError: if the stream goes past a size limit.
        :raises LocalProtocolError: after such an error, until
            :meth:`stream_ended`.
        """
        events = self._parser.feed(data)
        retry = self._parser.retry
        if retry is not None:
            self._retry_delay = retry / 1000
        self._last_event_id = self._parser.last_event_id
        return events

    def stream_ended(self) -> None:
        """The current stream ended (or failed): get ready for the next one.

        An incomplete event is discarded; the last event ID and the delay
        carry over.
        """
        self._parser.feed_eof()
        self._parser = self._new_parser()
