"""The events that every HTTP protocol emits from ``next_event()``.

Events are frozen dataclasses named for what happened.  They are the same for
HTTP/1.1, HTTP/2 and HTTP/3: headers use the HTTP/2 pseudo-headers on every
version, and ``stream_id`` names the request/response exchange an event
belongs to (HTTP/1.1 numbers its exchanges 1, 3, 5, ... like HTTP/2 does).
"""

from __future__ import annotations

from dataclasses import dataclass

from hcore._types import Headers

__all__ = (
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "GoawayReceived",
    "HeadersReceived",
    "InformationalResponseReceived",
    "SendBufferDrained",
    "StreamResetReceived",
    "StreamResetSent",
    "TrailersReceived",
)


@dataclass(frozen=True)
class Event:
    """Base class of every protocol event."""


@dataclass(frozen=True)
class _HeaderBlockEvent(Event):
    """An event that carries a header block; shows it readably, compares by value."""

    stream_id: int
    headers: Headers

    def __post_init__(self) -> None:
        # Equality and hashing should not depend on the sequence type a
        # protocol happened to build the header block in.
        if type(self.headers) is not tuple:
            object.__setattr__(self, "headers", tuple(self.headers))


@dataclass(frozen=True, init=False)
class HeadersReceived(_HeaderBlockEvent):
    """A request (on a server) or a final response (on a client) began.

    1xx responses other than ``101`` come as
    :class:`InformationalResponseReceived`; a ``101 Switching Protocols``
    and a 2xx answer to CONNECT are final, and the stream's data events
    that follow carry the tunnelled bytes.
    """

    #: The exchange this header block opens.
    stream_id: int
    #: The header block, pseudo-headers first.
    headers: Headers
    #: Whether the peer will send nothing more on this stream.
    end_stream: bool = False

    def __init__(
        self, stream_id: int, headers: Headers, end_stream: bool = False
    ) -> None:
        # Written out: a frozen dataclass's own __init__ sets each field
        # through object.__setattr__ and calls __post_init__, which costs
        # more than the rest of making the event, once or twice a request.
        fields = self.__dict__
        fields["stream_id"] = stream_id
        fields["headers"] = headers if type(headers) is tuple else tuple(headers)
        fields["end_stream"] = end_stream


@dataclass(frozen=True)
class InformationalResponseReceived(_HeaderBlockEvent):
    """An interim 1xx response (``100 Continue``, ``103 Early Hints``) arrived."""

    #: The request this response belongs to.
    stream_id: int
    #: The header block, with ``:status`` first.
    headers: Headers


@dataclass(frozen=True, init=False)
class DataReceived(Event):
    """A piece of a request or response body (or of a tunnel) arrived.

    Taking this event from ``next_event()`` returns its flow-control credit
    to the peer, so a reader that stops taking events stops the sender.
    """

    #: The stream the data belongs to.
    stream_id: int
    #: The bytes; may be empty when only ``end_stream`` is news.
    data: bytes
    #: Whether the peer will send nothing more on this stream.
    end_stream: bool = False

    def __init__(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        # Written out, as HeadersReceived's is.
        fields = self.__dict__
        fields["stream_id"] = stream_id
        fields["data"] = data
        fields["end_stream"] = end_stream

    def __repr__(self) -> str:
        shown = self.data if len(self.data) <= 32 else self.data[:29] + b"..."
        return (
            f"DataReceived(stream_id={self.stream_id}, data={shown!r} "
            f"({len(self.data)} bytes), end_stream={self.end_stream})"
        )


@dataclass(frozen=True)
class TrailersReceived(_HeaderBlockEvent):
    """Trailer fields arrived; they end the stream from the peer's side."""

    #: The stream the trailers end.
    stream_id: int
    #: The trailer fields (no pseudo-headers).
    headers: Headers


@dataclass(frozen=True)
class StreamResetReceived(Event):
    """The peer abandoned a stream (RST_STREAM, RESET_STREAM/STOP_SENDING)."""

    #: The stream that was reset.
    stream_id: int
    #: The peer's reason, in the version's code space (see ``error_codes``).
    error_code: int = 0


@dataclass(frozen=True)
class StreamResetSent(Event):
    """This side reset a stream on its own, for example after bad input on it.

    Emitted only for resets the protocol decided itself; a reset requested
    through ``submit_stream_reset()`` is not echoed.
    """

    #: The stream that was reset.
    stream_id: int
    #: The reason sent to the peer.
    error_code: int = 0


@dataclass(frozen=True)
class GoawayReceived(Event):
    """The peer is closing the connection gracefully.

    Streams up to :attr:`last_stream_id` may still complete; streams this
    side opened above it were not processed by the peer and can be retried
    on another connection.  No new stream may be opened.
    """

    #: The highest stream id the peer may have processed.
    last_stream_id: int
    #: The peer's reason.
    error_code: int = 0
    #: This side's open streams that the peer will not process.
    unprocessed_stream_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ConnectionTerminated(Event):
    """The connection is over: closed by either side, lost, or broken.

    After this event the protocol emits nothing more and ``has_expired()``
    is true.  Streams still open are abandoned.
    """

    #: Why, in the version's code space (see ``error_codes``).
    error_code: int = 0
    #: A human-readable reason, when there is one.
    message: str | None = None


@dataclass(frozen=True)
class SendBufferDrained(Event):
    """Everything submitted on a stream has left the protocol's buffer.

    ``submit_data()`` accepts data beyond the peer's flow-control window and
    holds it until the peer grants credit; ``pending_data_size()`` tells how
    much is held.  This event comes when that amount falls back to zero, so
    a writer can wait for it instead of growing the buffer without bound.
    """

    #: The stream whose held data was all sent.
    stream_id: int
