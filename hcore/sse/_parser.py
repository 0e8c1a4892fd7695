"""A sans-IO ``text/event-stream`` parser (HTML Living Standard §9.2.6).

Theory of operation
-------------------

The stream is decoded as UTF-8 (invalid bytes become U+FFFD, a leading BOM
is dropped) incrementally, so a character cut between two chunks comes out
whole.  The text is cut into lines at CR, LF or CRLF; a CR that ends one
chunk remembers to swallow an LF that starts the next.  Each complete line
is interpreted as the standard's "Interpreting an event stream" says:

- an empty line dispatches the event being built (if it has data);
- a line starting with ``:`` is a comment;
- otherwise ``field:value`` (one space after the colon dropped) or a bare
  ``field``; ``event``, ``data``, ``id`` and ``retry`` are understood,
  anything else ignored.

The last event ID persists from event to event (and, through
:class:`~hcore.sse.EventSourceState`, across reconnections).  Whatever is
left when the stream ends (an incomplete line or an event without its blank
line) is discarded, as the standard requires.

Memory is bounded: a line longer than ``max_line_size`` characters, or an
event whose data grows past ``max_event_size``, raises
:class:`EventStreamError` (a :class:`~hcore.RemoteProtocolError`): the
server sent something no client should buffer.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from hcore._errors import LocalProtocolError, RemoteProtocolError

__all__ = (
    "DEFAULT_MAX_EVENT_SIZE",
    "DEFAULT_MAX_LINE_SIZE",
    "EventStreamError",
    "EventStreamParser",
    "ServerSentEvent",
)

#: The longest line accepted, in characters.
DEFAULT_MAX_LINE_SIZE = 1_048_576
#: The most data one event may gather, in characters.
DEFAULT_MAX_EVENT_SIZE = 1_048_576


# HTML §9.2.5: a line ends at CRLF, LF or CR.
_LINE_END = re.compile(r"\r\n|\r|\n")


class EventStreamError(RemoteProtocolError):
    """The event stream went past a size limit; the parser is unusable after."""


@dataclass(frozen=True)
class ServerSentEvent:
    """One event of a ``text/event-stream``.

    Parsed events carry the stream's last event ID in :attr:`id` (the
    standard's ``lastEventId``); to the encoder, :attr:`id` and
    :attr:`retry` are the fields to write, ``None`` for none.
    """

    #: The event's data: its ``data`` lines joined with ``"\n"``.
    data: str = ""
    #: The event type; ``"message"`` when the stream named none.
    event: str = "message"
    #: The last event ID (``None`` when it is empty).
    id: str | None = None
    #: The reconnection time in milliseconds, if this event's block set one.
    retry: int | None = None


class EventStreamParser:
    """Turns a ``text/event-stream`` body into :class:`ServerSentEvent` s.

    :param last_event_id: the last event ID to start from (a reconnection
        continues the previous stream's).
    :param max_line_size: the longest line accepted, in characters.
    :param max_event_size: the most data an event may gather, in characters.
    :raises ValueError: if a limit is not a positive int.
    """

    def __init__(
        self,
        *,
        last_event_id: str = "",
        max_line_size: int = DEFAULT_MAX_LINE_SIZE,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        for name, limit in (
            ("max_line_size", max_line_size),
            ("max_event_size", max_event_size),
        ):
            if type(limit) is not int or limit < 1:
                raise ValueError(f"{name} must be a positive int, not {limit!r}")
        self._max_line = max_line_size
        self._max_event = max_event_size
        # The standard's "UTF-8 decode": replacement characters for errors.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._at_start = True  # the BOM check is still to do
        self._swallow_lf = False  # the last chunk ended with CR
        self._line: list[str] = []  # the current line's pieces
        self._line_size = 0
        # The standard's buffers.
        self._data: list[str] = []
        self._data_size = 0
        self._event_type = ""
        self._last_event_id_buffer = last_event_id
        self._last_event_id = last_event_id
        self._retry_in_block: int | None = None
        self._retry: int | None = None
        self._failed = False

    @property
    def last_event_id(self) -> str:
        """The last event ID of the last dispatched event (``""`` if none)."""
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time the stream set last, in milliseconds."""
        return self._retry

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Parse the next bytes of the stream.

        :param data: the next chunk, cut anywhere.
        :return: the events completed by it, in order.
        :raises EventStreamError: if a line or an event is over its limit.
        :raises LocalProtocolError: if the parser already failed.
        """
        if self._failed:
            raise LocalProtocolError("the parser failed already")
        text = self._decoder.decode(data)
        if self._at_start and text:
            self._at_start = False
            # HTML §9.2.6: one leading U+FEFF is ignored.
            if text[0] == "\ufeff":
                text = text[1:]
        return self._lines(text)

    def feed_eof(self) -> list[ServerSentEvent]:
        """The stream ended: drop any incomplete line and event.

        :return: always empty; here so a caller can treat it like
            :meth:`feed`.
        """
        # A truncated character at the very end would decode to U+FFFD, but
        # it can only belong to the incomplete line discarded here.
        self._decoder.reset()
        self._line = []
        self._line_size = 0
        self._reset_event()
        return []

    def _lines(self, text: str) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        start = 0
        if self._swallow_lf and text:
            # The CRLF pair was cut between chunks.
            self._swallow_lf = False
            if text[0] == "\n":
                start = 1
        for match in _LINE_END.finditer(text, start):
            self._add_to_line(text[start : match.start()])
            line = "".join(self._line)
            self._line = []
            self._line_size = 0
            event = self._interpret(line)
            if event is not None:
                events.append(event)
            start = match.end()
        # A CR at the very end may be the first half of a CRLF.
        if text:
            self._swallow_lf = text.endswith("\r")
        self._add_to_line(text[start:])
        return events

    def _add_to_line(self, piece: str) -> None:
        self._line_size += len(piece)
        if self._line_size > self._max_line:
            self._fail(f"a line is longer than {self._max_line} characters")
        if piece:
            self._line.append(piece)

    def _fail(self, reason: str) -> None:
        self._failed = True
        raise EventStreamError(reason)

    def _reset_event(self) -> None:
        self._data = []
        self._data_size = 0
        self._event_type = ""
        self._retry_in_block = None

    def _interpret(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # a comment
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "event":
            self._event_type = value
        elif field == "data":
            # The joined data: every line and a "\n" between two.
            self._data_size += len(value) + (1 if self._data else 0)
            if self._data_size > self._max_event:
                self._fail(f"an event has more than {self._max_event} characters")
            self._data.append(value)
        elif field == "id":
            # HTML §9.2.6: an id with NULL is ignored (so a bad id cannot
            # break the Last-Event-ID header).
            if "\0" not in value:
                self._last_event_id_buffer = value
        elif field == "retry":
            if value and value.isascii() and value.isdigit():
                self._retry = self._retry_in_block = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        # HTML §9.2.6 "dispatch the event", steps 1-2: the last event ID is
        # set even when no event follows.
        self._last_event_id = self._last_event_id_buffer
        if not self._data:
            self._reset_event()
            return None
        event = ServerSentEvent(
            data="\n".join(self._data),
            event=self._event_type or "message",
            id=self._last_event_id or None,
            retry=self._retry_in_block,
        )
        self._reset_event()
        return event
