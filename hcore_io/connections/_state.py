"""Bookkeeping of a connection's streams: event queues and who has ended what.

The connection follows each stream from the events it takes and the calls it
makes, the same way for every HTTP version: a stream is *finished* when both
sides ended it (``end_stream``, trailers), when either side reset it, when the
peer's GOAWAY said it was never processed, or when the connection ended
first.  Finished streams no longer count as in flight, which is what lets
the connection close its transport once the protocol has expired.
"""

from __future__ import annotations

from collections import deque

from hcore.events import (
    DataReceived,
    Event,
    HeadersReceived,
    StreamResetReceived,
    StreamResetSent,
    TrailersReceived,
)

__all__ = (
    "EVENT_COST",
    "DeadlinePassed",
    "EventQueue",
    "StreamState",
    "ends_remote_side",
)

#: What one queued event counts for beyond its data: a bound on event
#: objects as well as on bytes, so that a flood of empty events is bounded too.
EVENT_COST = 256

# (Tuples, not unions: ``A | B`` builds an object at every call.)
_MAY_END = (HeadersReceived, DataReceived)
_ALWAYS_END = (TrailersReceived, StreamResetReceived, StreamResetSent)


class DeadlinePassed(Exception):
    """A task's wait on its connection reached its deadline.

    Raised by the connection's wait, caught by the public method that gave
    the deadline, which raises its own timeout error.
    """


def ends_remote_side(event: Event) -> bool:
    """Whether an event is the last the peer sends on its stream."""
    if isinstance(event, _MAY_END):
        return event.end_stream
    return isinstance(event, _ALWAYS_END)


class EventQueue:
    """Events taken from the protocol that wait for their reader.

    The queue itself never refuses an event; it reports being *full* (its
    cost above the limit) and the connection stops taking events from the
    protocol while any queue is full.  :meth:`put` and :meth:`pop` say when
    that changes, so that the connection's count of full queues costs no
    question before and after every event.
    """

    __slots__ = ("_events", "_limit", "cost")

    def __init__(self, limit: int) -> None:
        # Made by the first put: most queues (an idle connection's, a
        # stream answered at once) never hold anything, and an empty
        # deque costs 600 bytes.  Each event is kept with its cost, which
        # taking it gives back.
        self._events: deque[tuple[Event, int]] | None = None
        self._limit = limit
        #: The data bytes queued plus :data:`EVENT_COST` per event: non-zero
        #: exactly while events are queued.  The hot paths ask it rather
        #: than the queue's truth, which costs a method call.
        self.cost = 0

    def __bool__(self) -> bool:
        return bool(self._events)

    def __len__(self) -> int:
        return 0 if self._events is None else len(self._events)

    @property
    def full(self) -> bool:
        """Whether the queue holds more than its limit."""
        return self.cost > self._limit

    def put(self, event: Event) -> bool:
        """Append an event.

        :return: whether the queue became full by it.
        """
        events = self._events
        if events is None:
            events = self._events = deque()
        cost = (
            EVENT_COST + len(event.data)
            if isinstance(event, DataReceived)
            else EVENT_COST
        )
        events.append((event, cost))
        before = self.cost
        after = self.cost = before + cost
        return before <= self._limit < after

    def take(self) -> Event:
        """Remove and return the oldest event.

        :raises IndexError: if the queue is empty.
        """
        return self.pop()[0]

    def pop(self) -> tuple[Event, bool]:
        """Remove the oldest event.

        :return: the event, and whether the queue stopped being full by it.
        :raises IndexError: if the queue is empty.
        """
        if not self._events:
            raise IndexError("the queue is empty")
        event, cost = self._events.popleft()
        before = self.cost
        after = self.cost = before - cost
        return event, after <= self._limit < before

    def clear(self) -> None:
        """Drop every event."""
        self._events = None
        self.cost = 0


class StreamState:
    """What the connection knows about one stream."""

    __slots__ = (
        "events",
        "has_handle",
        "incoming",
        "local_ended",
        "lost",
        "refused",
        "released",
        "remote_ended",
        "reset_by_peer",
        "reset_code",
        "stream_id",
        "unanswered",
    )

    def __init__(self, stream_id: int, limit: int) -> None:
        self.stream_id = stream_id
        #: Events for the stream's :class:`~hcore_io.connections.HTTPStream`.
        self.events = EventQueue(limit)
        #: Whether an :class:`~hcore_io.connections.HTTPStream` receives them.
        self.has_handle = False
        #: The handle was closed; events for the stream are dropped.
        self.released = False
        #: This side sent ``end_stream``.
        self.local_ended = False
        #: The peer sent ``end_stream`` (or trailers).
        self.remote_ended = False
        #: Error code of a reset by either side, once there was one.
        self.reset_code: int | None = None
        #: Whether the reset came from the peer.
        self.reset_by_peer = False
        #: The peer's GOAWAY listed the stream as not processed.
        self.refused = False
        #: The connection ended before the stream finished.
        self.lost = False
        #: The peer opened the stream (this side is the server).
        self.incoming = False
        #: Accepted on a multiplexed connection and nothing sent on it yet
        #: (counted by the driver's ``_gathering``).
        self.unanswered = False

    @property
    def finished(self) -> bool:
        """Whether nothing more happens on the stream in either direction."""
        return (
            self.reset_code is not None
            or self.refused
            or self.lost
            or (self.local_ended and self.remote_ended)
        )

    def receive_ready(self) -> bool:
        """Whether a receive on the stream ends now: an event is queued, or it finished.

        What a receive waits for (a method, not a lambda made per wait).
        """
        return bool(self.events.cost) or self.finished

    @property
    def aborted(self) -> bool:
        """Whether the stream ended abnormally: reset, refused or lost."""
        return self.reset_code is not None or self.refused or self.lost

    @property
    def done_receiving(self) -> bool:
        """Whether no more events will be queued for the stream."""
        return (
            self.remote_ended
            or self.reset_code is not None
            or self.refused
            or self.lost
        )
