"""What a :class:`~hcore.websocket.WebSocketSession` reports, and its states."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = (
    "BytesFragment",
    "BytesMessage",
    "CloseReceived",
    "PingReceived",
    "PongReceived",
    "SessionState",
    "SessionTerminated",
    "TextFragment",
    "TextMessage",
    "WebSocketEvent",
)


class SessionState(enum.Enum):
    """Where a session is in the closing handshake (RFC 6455 §7)."""

    #: Messages flow both ways.
    OPEN = "open"
    #: We sent a Close frame and wait for the peer's.
    LOCAL_CLOSING = "local-closing"
    #: The peer sent a Close frame and we have not answered yet (only
    #: without ``auto_close``).
    REMOTE_CLOSING = "remote-closing"
    #: Both Close frames were exchanged, or the session failed: nothing more
    #: is sent or received; the HTTP stream may be ended.
    CLOSED = "closed"


@dataclass(frozen=True)
class WebSocketEvent:
    """Base class of every session event."""


@dataclass(frozen=True)
class TextMessage(WebSocketEvent):
    """A whole text message arrived (its fragments joined)."""

    #: The message.
    data: str


@dataclass(frozen=True)
class BytesMessage(WebSocketEvent):
    """A whole binary message arrived (its fragments joined)."""

    #: The message.
    data: bytes


@dataclass(frozen=True)
class TextFragment(WebSocketEvent):
    """Part of a text message arrived (sessions with ``stream_messages``)."""

    #: This part, decoded (a character split across parts comes whole in
    #: the later part).
    data: str
    #: Whether this part ends the message.
    message_finished: bool


@dataclass(frozen=True)
class BytesFragment(WebSocketEvent):
    """Part of a binary message arrived (sessions with ``stream_messages``)."""

    #: This part.
    data: bytes
    #: Whether this part ends the message.
    message_finished: bool


@dataclass(frozen=True)
class PingReceived(WebSocketEvent):
    """The peer sent a Ping (answered already if ``auto_pong`` is on)."""

    #: The Ping's application data (at most 125 bytes).
    payload: bytes


@dataclass(frozen=True)
class PongReceived(WebSocketEvent):
    """The peer sent a Pong."""

    #: The Pong's application data (at most 125 bytes).
    payload: bytes


@dataclass(frozen=True)
class CloseReceived(WebSocketEvent):
    """The peer sent a Close frame (RFC 6455 §5.5.1).

    If we had sent ours first, the session is now ``CLOSED``; otherwise it
    answered (``auto_close``, then ``CLOSED``) or waits in
    ``REMOTE_CLOSING`` for :meth:`~hcore.websocket.WebSocketSession.send_close`.
    """

    #: The status code; 1005 when the frame carried none (RFC 6455 §7.1.5).
    code: int
    #: The reason, possibly empty.
    reason: str


@dataclass(frozen=True)
class SessionTerminated(WebSocketEvent):
    """The session ended without a clean closing handshake; it is the last event.

    Either the peer broke the protocol, and a Close frame with ``code`` is
    queued to tell it why (RFC 6455 §7.1.7, "fail the WebSocket
    connection"), or the stream ended before the closing handshake (code
    1006, nothing sent).  The HTTP stream should be ended once what is
    queued is written.
    """

    #: 1002 protocol error, 1007 invalid data, 1009 message too big, or
    #: 1006 when the stream ended early.
    code: int
    #: What went wrong.
    reason: str
