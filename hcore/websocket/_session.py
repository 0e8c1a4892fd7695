"""A sans-IO WebSocket session (RFC 6455 §5-7) over any HTTP stream's payload.

Theory of operation
-------------------

Once a handshake succeeded (an HTTP/1.1 ``101``, or a ``2xx`` to an
HTTP/2 or HTTP/3 extended CONNECT), the stream carries WebSocket frames
both ways.  A :class:`WebSocketSession` is fed the stream's payload bytes
(:meth:`~WebSocketSession.receive_data`) and the end of the stream
(:meth:`~WebSocketSession.receive_eof`); it hands back events
(:meth:`~WebSocketSession.next_event`) and the bytes to write on the stream
(:meth:`~WebSocketSession.data_to_send`).  It never touches the stream
itself, so one class serves every HTTP version.

Frames are parsed and built by wsproto's frame layer
(:class:`wsproto.frame_protocol.FrameProtocol`) with permessage-deflate and
the message size limit plugged in as extensions (see :mod:`._codec`).
This module adds what wsproto's frame layer leaves to its user: joining
fragments into messages, answering pings, the closing handshake and its
states, and turning every peer error into a Close frame plus a terminal
event.

States (:class:`SessionState`) move only forward::

    OPEN --send_close--> LOCAL_CLOSING --Close received--> CLOSED
    OPEN --Close received--> REMOTE_CLOSING --send_close--> CLOSED
                             (auto_close answers at once: straight to CLOSED)
    any --peer error / stream ended--> CLOSED (SessionTerminated)

A peer error never raises: the session queues a Close frame with the code
RFC 6455 §7.4.1 gives for it (1002, 1007, 1009), emits
:class:`SessionTerminated` and ignores everything after.  A caller's misuse
(sending after close, a bad close code, a ping over 125 bytes) raises
:class:`~hcore.LocalProtocolError` at once and changes nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from wsproto.frame_protocol import Frame, FrameProtocol, Opcode, ParseFailed

from hcore._errors import LocalProtocolError
from hcore.websocket._codec import make_codecs
from hcore.websocket._events import (
    BytesFragment,
    BytesMessage,
    CloseReceived,
    PingReceived,
    PongReceived,
    SessionState,
    SessionTerminated,
    TextFragment,
    TextMessage,
    WebSocketEvent,
)
from hcore.websocket._extensions import PerMessageDeflate

__all__ = ("DEFAULT_FRAGMENT_SIZE", "DEFAULT_MAX_MESSAGE_SIZE", "WebSocketSession")

#: Received messages over this many bytes (after decompression) close the
#: session with 1009.
DEFAULT_MAX_MESSAGE_SIZE = 1_048_576
#: Outgoing messages are cut into frames of at most this many payload bytes.
DEFAULT_FRAGMENT_SIZE = 65_536

# RFC 6455 §5.5: control frames carry at most 125 bytes; a Close frame's
# reason gets what the 2-byte code leaves.
_MAX_CONTROL_PAYLOAD = 125
_MAX_CLOSE_REASON = _MAX_CONTROL_PAYLOAD - 2
# RFC 6455 §7.4.1-2: the codes an endpoint may put in a Close frame.
_SENDABLE_CODES = frozenset((*range(1000, 1004), *range(1007, 1015)))
_NO_STATUS = 1005
_Data = TypeVar("_Data", str, bytes)
_ABNORMAL = 1006


def _check_sendable_code(code: int) -> None:
    if code not in _SENDABLE_CODES and not 3000 <= code <= 4999:
        raise LocalProtocolError(f"close code {code} may not be sent (RFC 6455 §7.4)")


def _utf8_cut(data: bytes, start: int, limit: int) -> int:
    """Where to end a fragment of at most ``limit`` bytes from ``start``.

    The cut never splits a character; a fragment holds one whole character
    at least, even if that is more than ``limit`` bytes.
    """
    cut = start + limit
    if cut >= len(data):
        return len(data)
    # Back over continuation bytes (0b10xxxxxx) to a character's start.
    while cut > start and data[cut] & 0xC0 == 0x80:
        cut -= 1
    if cut > start:
        return cut
    cut = start + limit
    while cut < len(data) and data[cut] & 0xC0 == 0x80:
        cut += 1
    return cut


class WebSocketSession:
    """One WebSocket's frames, messages and closing handshake, without I/O.

    :param client: whether this is the client end (it masks what it sends
        and expects unmasked frames, RFC 6455 §5.3).
    :param extensions: the agreed extensions, from the handshake
        (:attr:`~hcore.websocket.WebSocketAccepted.extensions`).
    :param max_message_size: the largest message accepted, in bytes after
        decompression; a larger one closes the session with 1009.  ``None``
        for no limit (only sensible with ``stream_messages``).
    :param fragment_size: the largest frame payload sent; longer messages
        are fragmented (RFC 6455 §5.4).
    :param auto_pong: answer every Ping with a Pong at once.
    :param auto_close: answer the peer's Close frame at once, echoing its
        code (RFC 6455 §5.5.1); otherwise the session waits in
        ``REMOTE_CLOSING`` for :meth:`send_close`.
    :param stream_messages: emit :class:`TextFragment` / :class:`BytesFragment`
        as message parts arrive instead of whole messages.
    :raises ValueError: if a limit is out of range.
    """

    def __init__(
        self,
        client: bool,
        *,
        extensions: Sequence[PerMessageDeflate] = (),
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        fragment_size: int = DEFAULT_FRAGMENT_SIZE,
        auto_pong: bool = True,
        auto_close: bool = True,
        stream_messages: bool = False,
    ) -> None:
        if max_message_size is not None and (
            type(max_message_size) is not int or max_message_size < 1
        ):
            raise ValueError("max_message_size must be a positive int or None")
        if type(fragment_size) is not int or fragment_size < 1:
            raise ValueError("fragment_size must be a positive int")
        codecs, _ = make_codecs(extensions, max_message_size)
        self._frames = FrameProtocol(client, codecs)
        self._client = client
        self._fragment_size = fragment_size
        self._auto_pong = auto_pong
        self._auto_close = auto_close
        self._stream_messages = stream_messages
        self._state = SessionState.OPEN
        self._events: deque[WebSocketEvent] = deque()
        self._outgoing = bytearray()
        # The kind of the message being sent in parts, if any.
        self._sending: type[str] | type[bytes] | None = None
        # The parts of the message being received (whole-message mode).
        self._parts: list[str | bytes] = []

    # -- state -----------------------------------------------------------------

    @property
    def client(self) -> bool:
        """Whether this is the client end."""
        return self._client

    @property
    def state(self) -> SessionState:
        """Where the session is in the closing handshake."""
        return self._state

    # -- receiving -------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes the HTTP stream delivered.

        Never raises for what the peer sent: errors become a queued Close
        frame and a :class:`SessionTerminated` event.  Bytes that arrive
        after the peer's Close frame are ignored (RFC 6455 §5.5.1: it sends
        nothing after it), so they are never buffered.

        :param data: the stream's payload, cut anywhere.
        """
        if not data or self._state in (
            SessionState.CLOSED,
            SessionState.REMOTE_CLOSING,
        ):
            return
        self._frames.receive_bytes(data)
        try:
            for frame in self._frames.received_frames():
                self._handle(frame)
        except ParseFailed as exc:
            self._fail(int(exc.code), str(exc))

    def receive_eof(self) -> None:
        """The HTTP stream ended (or was reset) on the peer's side.

        Before the closing handshake finished this is an abnormal closure
        (RFC 6455 §7.1.5: code 1006): :class:`SessionTerminated` is emitted.
        """
        if self._state is not SessionState.CLOSED:
            self._state = SessionState.CLOSED
            self._events.append(
                SessionTerminated(
                    _ABNORMAL, "the stream ended before the closing handshake"
                )
            )

    def next_event(self) -> WebSocketEvent | None:
        """Take the next event, or ``None`` if there is none now.

        :return: the oldest event not taken yet.
        """
        return self._events.popleft() if self._events else None

    def events(self) -> Iterator[WebSocketEvent]:
        """Take every event there is now, oldest first.

        :return: an iterator that stops when no event is left.
        """
        while self._events:
            yield self._events.popleft()

    def _handle(self, frame: Frame) -> None:
        opcode, payload = frame.opcode, frame.payload
        if isinstance(payload, tuple):  # Opcode.CLOSE: wsproto parsed it
            code, reason = payload
            self._close_received(int(code), reason)
        elif opcode is Opcode.PING:
            ping = bytes(payload)  # type: ignore[arg-type]
            self._events.append(PingReceived(ping))
            if self._auto_pong:
                self._outgoing += self._frames.pong(ping)
        elif opcode is Opcode.PONG:
            self._events.append(PongReceived(bytes(payload)))  # type: ignore[arg-type]
        elif isinstance(payload, str):
            self._data_part(payload, frame, TextFragment, TextMessage, "")
        else:
            self._data_part(payload, frame, BytesFragment, BytesMessage, b"")

    def _data_part(
        self,
        payload: _Data,
        frame: Frame,
        fragment: Callable[[_Data, bool], WebSocketEvent],
        message: Callable[[_Data], WebSocketEvent],
        empty: _Data,
    ) -> None:
        finished = frame.message_finished and frame.frame_finished
        if self._stream_messages:
            if payload or finished:
                self._events.append(fragment(payload, finished))
            return
        if payload:
            self._parts.append(payload)
        if finished:
            parts, self._parts = self._parts, []
            self._events.append(message(empty.join(parts)))  # type: ignore[arg-type]

    def _close_received(self, code: int, reason: str) -> None:
        self._events.append(CloseReceived(code, reason))
        self._parts = []
        if self._state is SessionState.LOCAL_CLOSING:
            self._state = SessionState.CLOSED
        elif self._auto_close:
            # RFC 6455 §5.5.1: answer with a Close, echoing the code.
            echo = None if code == _NO_STATUS else code
            self._outgoing += self._frames.close(echo)
            self._state = SessionState.CLOSED
        else:
            self._state = SessionState.REMOTE_CLOSING

    def _fail(self, code: int, reason: str) -> None:
        # RFC 6455 §7.1.7: send a Close with the reason unless one was sent.
        # (No frame is read after the peer's Close, so REMOTE_CLOSING never
        # gets here.)
        if self._state is SessionState.OPEN:
            self._outgoing += self._frames.close(code, reason[:_MAX_CLOSE_REASON])
        self._state = SessionState.CLOSED
        self._parts = []
        self._events.append(SessionTerminated(code, reason))

    # -- sending ---------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Take the bytes to write on the HTTP stream.

        :return: every byte queued since the last call (possibly none).
        """
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def _check_can_send_data(self, kind: type[str] | type[bytes]) -> None:
        # RFC 6455 §5.5.1: no data frame after our own Close.
        if self._state not in (SessionState.OPEN, SessionState.REMOTE_CLOSING):
            raise LocalProtocolError(f"cannot send a message in state {self._state}")
        if self._sending is not None and self._sending is not kind:
            raise LocalProtocolError(
                "a message of the other type is still being sent in parts"
            )

    def send_text(self, data: str, *, message_finished: bool = True) -> None:
        """Queue a text message, or one part of it.

        :param data: the text (or this part of it).
        :param message_finished: false to send the message in parts: more
            :meth:`send_text` calls follow, the last with this true.
        :raises LocalProtocolError: after our Close frame, or while a binary
            message is being sent in parts.
        """
        self._check_can_send_data(str)
        encoded = data.encode("utf-8")
        start = 0
        while True:
            end = _utf8_cut(encoded, start, self._fragment_size)
            last = end >= len(encoded)
            self._outgoing += self._frames.send_data(
                encoded[start:end].decode("utf-8"), fin=last and message_finished
            )
            if last:
                break
            start = end
        self._sending = None if message_finished else str

    def send_bytes(self, data: bytes, *, message_finished: bool = True) -> None:
        """Queue a binary message, or one part of it.

        :param data: the bytes (or this part of them).
        :param message_finished: false to send the message in parts: more
            :meth:`send_bytes` calls follow, the last with this true.
        :raises LocalProtocolError: after our Close frame, or while a text
            message is being sent in parts.
        """
        self._check_can_send_data(bytes)
        view = memoryview(data)
        size = self._fragment_size
        start = 0
        while True:
            last = start + size >= len(view)
            self._outgoing += self._frames.send_data(
                bytes(view[start : start + size]), fin=last and message_finished
            )
            if last:
                break
            start += size
        self._sending = None if message_finished else bytes

    def _check_control(self, payload: bytes) -> None:
        if self._state is SessionState.CLOSED:
            raise LocalProtocolError("the session is closed")
        if len(payload) > _MAX_CONTROL_PAYLOAD:
            raise LocalProtocolError("a control frame carries at most 125 bytes")

    def send_ping(self, payload: bytes = b"") -> None:
        """Queue a Ping.

        :param payload: application data the Pong will echo (<= 125 bytes).
        :raises LocalProtocolError: if closed or the payload is too long.
        """
        self._check_control(payload)
        self._outgoing += self._frames.ping(payload)

    def send_pong(self, payload: bytes = b"") -> None:
        """Queue a Pong (unsolicited, or answering a Ping without ``auto_pong``).

        :param payload: application data (<= 125 bytes).
        :raises LocalProtocolError: if closed or the payload is too long.
        """
        self._check_control(payload)
        self._outgoing += self._frames.pong(payload)

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        """Start the closing handshake, or answer the peer's Close.

        :param code: the status code (RFC 6455 §7.4), or ``None`` for a Close
            frame without one.
        :param reason: why, at most 123 bytes of UTF-8 (needs a code).
        :raises LocalProtocolError: if a Close was sent already, the code may
            not be sent, or the reason is too long.
        """
        if self._state not in (SessionState.OPEN, SessionState.REMOTE_CLOSING):
            raise LocalProtocolError(f"cannot send a Close in state {self._state}")
        if code is None:
            if reason:
                raise LocalProtocolError("a Close reason needs a code")
        else:
            _check_sendable_code(code)
        if len(reason.encode("utf-8")) > _MAX_CLOSE_REASON:
            raise LocalProtocolError("a Close reason is at most 123 bytes of UTF-8")
        self._outgoing += self._frames.close(code, reason)
        self._state = (
            SessionState.LOCAL_CLOSING
            if self._state is SessionState.OPEN
            else SessionState.CLOSED
        )
        self._sending = None
