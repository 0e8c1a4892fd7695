"""HTTP/2 on h2: everything the client and the server protocols share.

Theory of operation
-------------------
h2 parses and builds frames and keeps the RFC 9113 state of the connection
and of every stream, HPACK, and both directions' flow-control windows.  The
protocol around it keeps three things h2 does not:

* A table of open streams (:class:`~._stream.Stream`): which header blocks
  the application has sent, and the data it submitted that the peer's
  windows cannot take yet.  A record lives exactly as long as h2 counts its
  stream as open, so the table's size is the number of open streams.
* A queue of hcore events.  ``bytes_received`` feeds h2 and translates its
  events, checking header blocks (:mod:`._headers`) and refusing streams on
  the way.  ``next_event`` pops one; taking a
  :class:`~hcore.events.DataReceived` hands its bytes back to h2's window
  accounting (``acknowledge_received_data``), which sends WINDOW_UPDATE.
  The peer can therefore never send more than the application took plus
  the receive windows.  Data of one stream queued one piece behind another
  (a read brings many DATA frames) is taken as one event.
* Outgoing bytes: h2's buffer, preceded by the frames we build ourselves
  (a graceful GOAWAY, which h2 could only send by closing its state).
* A frame gate (:mod:`._frames`) that reads frame headers before h2 sees
  the bytes: oversized frames, CONTINUATION floods and unacknowledged
  PING/SETTINGS floods end the connection before h2 buffers them.

Sending data: ``submit_data`` hands h2 as much as the peer's windows and
SETTINGS_MAX_FRAME_SIZE allow and keeps the rest in the stream's record.
After every read that brought WINDOW_UPDATE or SETTINGS, waiting streams
are served one frame each in turn until credit runs out; a stream whose
buffer empties gets :class:`~hcore.events.SendBufferDrained`, and trailers
or END_STREAM queued behind the data go out with it.

Closing: ``submit_close`` sends GOAWAY but keeps h2 open, so streams
already accepted finish (RFC 9113 §6.8); a received GOAWAY likewise (see
:mod:`._h2`).  A peer's protocol error makes h2 queue GOAWAY with the
error's code and becomes :class:`~hcore.events.ConnectionTerminated`;
stream-level errors become stream resets.  After ``ConnectionTerminated``
the protocol ignores input and emits nothing more.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from h2.connection import ConnectionState
from h2.events import DataReceived as H2DataReceived
from h2.events import Event as H2Event
from h2.events import SettingsAcknowledged as H2SettingsAcknowledged
from h2.events import StreamReset as H2StreamReset
from h2.events import TrailersReceived as H2TrailersReceived
from h2.exceptions import ProtocolError
from hyperframe.frame import GoAwayFrame

from hcore._error_codes import HTTP2_ERROR_CODES, HTTPErrorCodes
from hcore._errors import LocalProtocolError
from hcore._types import Headers
from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoawayReceived,
    SendBufferDrained,
    StreamResetReceived,
    StreamResetSent,
    TrailersReceived,
)
from hcore.protocols._protocols import HTTPOverTCPProtocol
from hcore.protocols.http2._frames import FrameGate
from hcore.protocols.http2._guard import ResetGuard
from hcore.protocols.http2._h2 import GoawayFrameReceived, open_connection
from hcore.protocols.http2._headers import (
    TRAILERS,
    MalformedHeaders,
    ReceivedChecker,
    received,
    trailers_to_send,
)
from hcore.protocols.http2._options import Options
from hcore.protocols.http2._stream import DRAINED, SENT, STUCK, Stream, send_frame

__all__ = ("H2Protocol",)

# RFC 9113 §5.1.1
MAX_STREAM_ID = 2**31 - 1
_MAX_ERROR_CODE = 2**32 - 1
_CODES = HTTP2_ERROR_CODES
#: The data bytes after which :func:`_join_data` stops joining (one more
#: piece may pass it): a default stream window.
JOINED_MAX = 64 * 1024


class H2Protocol(HTTPOverTCPProtocol):
    """HTTP/2 over one TCP or TLS connection, built on h2.

    Use :class:`H2ClientProtocol` or :class:`H2ServerProtocol` (or the
    factories); this base holds what both roles share.
    """

    _client_side: ClassVar[bool]

    def __init__(self, options: Options) -> None:
        """Set up h2 and queue the preface; the subclasses take the limits.

        :param options: the validated limits.
        """
        self._conn = open_connection(options, client_side=self._client_side)
        self._max_header_list_size = options.max_header_list_size
        self._events: deque[Event] = deque()
        self._streams: dict[int, Stream] = {}
        # Streams whose buffer waits for credit, in the order they blocked.
        self._blocked: dict[int, Stream] = {}
        # Bytes that go out before h2's buffer.
        self._out: list[bytes] = []
        self._terminated = False
        # The last stream id of the GOAWAY we sent, once sent.
        self._goaway_sent: int | None = None
        self._goaway_received = False
        # RFC 9113 §6.8: the highest peer-opened stream we took on, which a
        # GOAWAY names (refused and malformed streams were not taken on).
        self._last_accepted = 0
        self._settings_acked = False
        self._guard: ResetGuard | None = None
        self._checker = ReceivedChecker(
            options.max_header_list_size, options.enable_connect_protocol
        )
        self._gate = FrameGate(
            server=not self._client_side,
            max_frame_size=self._conn.max_inbound_frame_size,
            max_header_list_size=options.max_header_list_size,
        )
        self._handlers: dict[type[H2Event], Callable[[Any], None]] = {
            H2DataReceived: self._on_data,
            H2TrailersReceived: self._on_trailers,
            H2StreamReset: self._on_reset,
            H2SettingsAcknowledged: self._on_settings_acked,
            GoawayFrameReceived: self._on_goaway,
        }

    @property
    def http_version(self) -> str:
        """Always ``"2"``."""
        return "2"

    @property
    def multiplexed(self) -> bool:
        """Always true: streams run concurrently."""
        return True

    @property
    def error_codes(self) -> HTTPErrorCodes:
        """The RFC 9113 §7 error codes."""
        return _CODES

    def has_expired(self) -> bool:
        """Whether no new stream may be opened on this connection, ever.

        True once GOAWAY was sent or received, once the connection
        terminated, and (client) once stream ids are used up.  Streams
        already open may still be running.
        """
        return (
            self._terminated
            or self._goaway_sent is not None
            or self._goaway_received
            or self._conn.highest_outbound_stream_id > MAX_STREAM_ID - 2
        )

    def pending_data_size(self, stream_id: int) -> int:
        """How many submitted bytes of a stream wait for the peer's credit.

        :param stream_id: the stream; an unknown or closed stream has ``0``.
        :return: the byte count.
        """
        stream = self._streams.get(stream_id)
        return stream.pending if stream is not None else 0

    def submit_data(
        self, stream_id: int, data: bytes, end_stream: bool = False
    ) -> None:
        """Send body (or tunnel) bytes on a stream.

        As much as the peer's windows and frame size allow is framed at
        once; the rest waits (see :meth:`pending_data_size`).

        :param stream_id: the stream.
        :param data: the bytes; may be empty to only end the stream.
        :param end_stream: whether this ends our side of the stream.
        :raises LocalProtocolError: if the stream is not open for sending
            or its header block has not been sent.
        """
        stream = self._sendable(stream_id)
        if not stream.final_sent:
            raise LocalProtocolError(
                f"stream {stream_id}: data before its header block"
            )
        if type(data) is not bytes:
            data = _as_bytes(data)
        conn = self._conn
        if not stream.pending and conn.send_if_room(stream_id, data, end_stream):
            # The common case: it fitted in one frame.
            if end_stream:
                self._end_submitted(stream)
                self._local_end(stream)
            return
        if data:
            stream.push(data)
        if end_stream:
            self._end_submitted(stream)
        if stream_id in self._blocked:
            return  # behind data already waiting for credit
        while (result := send_frame(conn, stream)) == SENT:
            pass
        if result == STUCK:
            self._blocked[stream_id] = stream
        elif stream.end_submitted:
            self._local_end(stream)

    def submit_stream_reset(self, stream_id: int, error_code: int = 0) -> None:
        """Reset a stream (RST_STREAM), dropping its waiting data and events.

        Events of the stream not yet taken are discarded (their flow-control
        credit is returned).  An unknown or closed stream is left alone.

        :param stream_id: the stream.
        :param error_code: an RFC 9113 §7 code.
        :raises LocalProtocolError: if ``error_code`` is not a 32-bit code.
        """
        _check_code(error_code)
        if self._terminated:
            return
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        self._blocked.pop(stream_id, None)
        self._conn.reset_stream(stream_id, error_code)
        self._purge(stream_id)

    def submit_close(self, error_code: int = 0) -> None:
        """Send GOAWAY: open streams may finish, no new ones are accepted.

        The last stream id is the highest stream the peer opened that was
        accepted (not refused).  A second call does nothing.

        :param error_code: an RFC 9113 §7 code.
        :raises LocalProtocolError: if ``error_code`` is not a 32-bit code.
        """
        _check_code(error_code)
        if self._terminated or self._goaway_sent is not None:
            return
        last = self._last_accepted
        self._goaway_sent = last
        # Keep the order: what h2 queued so far goes before the GOAWAY.
        self._out.append(self._conn.data_to_send())
        frame = GoAwayFrame(last_stream_id=last, error_code=error_code)
        self._out.append(frame.serialize())

    def next_event(self) -> Event | None:
        """Take the next event; taking data returns its flow-control credit.

        :return: the event, or ``None`` when there is none for now.
        """
        events = self._events
        if not events:
            return None
        event = events.popleft()
        if type(event) is DataReceived and event.data and not self._terminated:
            if events and not event.end_stream:
                event = _join_data(event, events)
            self._conn.acknowledge_received_data(len(event.data), event.stream_id)
        return event

    def bytes_received(self, data: bytes) -> None:
        """Feed bytes from the peer; errors become events, never exceptions.

        :param data: the bytes; may be empty.
        """
        if self._terminated or not data:
            return
        complaint = self._gate.feed(data)
        if complaint is not None:
            # Refused before h2 buffers (or answers) any of it.
            code, reason = complaint
            self._terminate(code, f"peer broke HTTP/2: {reason}", goaway=True)
            return
        try:
            h2_events = self._conn.receive_data(data)
        except ProtocolError as exc:
            # h2 has queued GOAWAY with the code (except for a bad preface,
            # which _terminate covers).
            self._terminate(
                int(exc.error_code), f"peer broke HTTP/2: {exc}", goaway=True
            )
            return
        except Exception as exc:
            # Input h2 should have rejected but choked on instead.
            self._terminate(_CODES.internal_error, f"h2 failed: {exc!r}", goaway=True)
            return
        handlers = self._handlers
        for event in h2_events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(event)
                if self._has_terminated():
                    return
        if self._blocked:
            self._flush()

    def eof_received(self) -> None:
        """The peer sent its last byte: the connection is over."""
        self._terminate(_CODES.no_error, "the peer closed the connection", goaway=False)

    def connection_lost(self) -> None:
        """The connection is gone: terminate and drop what was left to send."""
        self._terminate(_CODES.no_error, "the connection was lost", goaway=False)
        self._out.clear()
        self._conn.clear_outbound_data_buffer()

    def bytes_to_send(self) -> bytes:
        """Take the bytes to write to the peer.

        :return: the bytes, ``b""`` when there are none.
        """
        self._gate.sent()
        data = self._conn.data_to_send()
        out = self._out
        if out:
            out.append(data)
            data = b"".join(out)
            out.clear()
        return data

    def _has_terminated(self) -> bool:
        # A method, so that a check after a handler ran is not narrowed away.
        return self._terminated

    def _sendable(self, stream_id: int) -> Stream:
        if self._terminated:
            raise LocalProtocolError("the connection is closed")
        stream = self._streams.get(stream_id)
        if stream is None:
            raise LocalProtocolError(f"stream {stream_id} is not open")
        if stream.end_submitted:
            raise LocalProtocolError(f"stream {stream_id} was already ended")
        return stream

    def _submit_trailers(
        self, stream: Stream, headers: Headers, end_stream: bool
    ) -> None:
        if not end_stream:
            raise LocalProtocolError("trailers must end the stream")
        fields = trailers_to_send(headers)
        self._end_submitted(stream)
        if stream.pending:
            stream.trailers = fields
            return
        self._conn.send_block(stream.stream_id, fields, True)
        self._local_end(stream)

    def _end_submitted(self, stream: Stream) -> None:
        stream.end_submitted = True
        # Our response is complete: a reset from now on is no abuse.
        stream.seq = -1

    def _local_end(self, stream: Stream) -> None:
        stream.local_ended = True
        if stream.remote_ended:
            del self._streams[stream.stream_id]

    def _remote_end(self, stream: Stream) -> None:
        stream.remote_ended = True
        if stream.local_ended:
            del self._streams[stream.stream_id]

    def _flush(self) -> None:
        """Serve waiting streams one frame each in turn while credit lasts."""
        conn = self._conn
        blocked = self._blocked
        events = self._events
        while blocked:
            progressed = False
            for stream in list(blocked.values()):
                result = send_frame(conn, stream)
                if result != STUCK:
                    progressed = True
                    if result == DRAINED:
                        del blocked[stream.stream_id]
                        events.append(SendBufferDrained(stream.stream_id))
                        if stream.end_submitted:
                            self._local_end(stream)
            if not progressed:
                return

    def _purge(self, stream_id: int) -> None:
        """Drop a stream's untaken events, returning the credit of its data."""
        if not self._events:
            return
        kept: deque[Event] = deque()
        for event in self._events:
            if getattr(event, "stream_id", None) != stream_id:
                kept.append(event)
            elif type(event) is DataReceived and event.data:
                self._conn.acknowledge_received_data(len(event.data), stream_id)
        self._events = kept

    def _reset_h2(self, stream_id: int, error_code: int) -> None:
        # Within one read h2 may already have closed (even forgotten) the
        # stream; then there is nothing to reset.
        h2_stream = self._conn.streams.get(stream_id)
        if h2_stream is not None and not h2_stream.closed:
            self._conn.reset_stream(stream_id, error_code)

    def _reset_malformed(self, stream_id: int, seq: int) -> None:
        # RFC 9113 §8.1.1: a malformed message is a stream error.
        self._streams.pop(stream_id, None)
        self._blocked.pop(stream_id, None)
        self._reset_h2(stream_id, _CODES.protocol_error)
        self._events.append(StreamResetSent(stream_id, _CODES.protocol_error))
        self._peer_abandoned(seq)

    def _peer_abandoned(self, seq: int) -> None:
        guard = self._guard
        if seq >= 0 and guard is not None and guard.abandoned(seq):
            self._terminate(
                _CODES.enhance_your_calm,
                "too many streams abandoned by the peer (rapid reset)",
                goaway=True,
            )

    def _terminate(self, error_code: int, message: str, *, goaway: bool) -> None:
        if self._terminated:
            return
        self._terminated = True
        conn = self._conn
        if goaway and conn.state_machine.state is not ConnectionState.CLOSED:
            last = self._goaway_sent
            if last is None:
                last = self._last_accepted
            conn.close_connection(error_code=error_code, last_stream_id=last)
        self._streams.clear()
        self._blocked.clear()
        self._events.append(ConnectionTerminated(error_code, message))

    def _on_data(self, event: H2DataReceived) -> None:
        stream_id = event.stream_id
        data = event.data
        credit = event.flow_controlled_length - len(data)
        stream = self._streams.get(stream_id)
        if stream is None:
            # A stream refused or reset earlier in this read: its data will
            # never be taken, so its credit goes back now.
            credit += len(data)
        elif event.stream_ended is None:
            self._events.append(DataReceived(stream_id, data))
        else:
            self._events.append(DataReceived(stream_id, data, True))
            self._remote_end(stream)
        if credit:
            # Padding, or data nobody will take.
            self._conn.acknowledge_received_data(credit, stream_id)

    def _on_trailers(self, event: H2TrailersReceived) -> None:
        stream_id = event.stream_id
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        try:
            fields = received(event.headers, TRAILERS, self._max_header_list_size)
        except MalformedHeaders:
            self._reset_malformed(stream_id, stream.seq)
            return
        self._events.append(TrailersReceived(stream_id, fields))
        self._remote_end(stream)

    def _on_reset(self, event: H2StreamReset) -> None:
        stream_id = event.stream_id
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        self._blocked.pop(stream_id, None)
        if event.remote_reset:
            self._events.append(StreamResetReceived(stream_id, int(event.error_code)))
            self._peer_abandoned(stream.seq)
        else:
            # h2 reset the stream itself, e.g. a window overflow (§6.9.1).
            self._events.append(StreamResetSent(stream_id, int(event.error_code)))

    def _on_settings_acked(self, event: H2SettingsAcknowledged) -> None:
        self._settings_acked = True

    def _on_goaway(self, event: GoawayFrameReceived) -> None:
        self._goaway_received = True
        last = event.last_stream_id
        # Streams we opened above last_stream_id were not processed
        # (RFC 9113 §6.8): they are over here too.
        mine = int(self._client_side)
        unprocessed = tuple(
            sorted(sid for sid in self._streams if sid > last and sid % 2 == mine)
        )
        for stream_id in unprocessed:
            del self._streams[stream_id]
            self._blocked.pop(stream_id, None)
        self._events.append(GoawayReceived(last, event.error_code, unprocessed))
        if event.error_code:
            # RFC 9113 §5.4.1: after a GOAWAY for an error the peer closes.
            self._terminate(
                event.error_code,
                f"the peer closed the connection with error {event.error_code:#x}",
                goaway=False,
            )


def _join_data(first: DataReceived, events: deque[Event]) -> DataReceived:
    """Join the data events of ``first``'s stream that follow it in ``events``.

    A peer's DATA frames are 8 or 16 KiB each, and one read brings many: a
    reader gets them as one event (frame boundaries mean nothing in a body),
    so the connection and the application handle one event per read rather
    than one per frame.  Only events right behind ``first`` are taken, up to
    :data:`JOINED_MAX` bytes; the stream's window bounds them anyway.
    """
    stream_id = first.stream_id
    pieces = [first.data]
    size = len(first.data)
    end_stream = False
    # Bounded by the events queued and JOINED_MAX.
    while events and size < JOINED_MAX:
        following = events[0]
        if type(following) is not DataReceived or following.stream_id != stream_id:
            break
        events.popleft()
        pieces.append(following.data)
        size += len(following.data)
        if following.end_stream:
            end_stream = True
            break
    if len(pieces) == 1:
        return first
    return DataReceived(stream_id, b"".join(pieces), end_stream)


def _as_bytes(data: object) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise LocalProtocolError(f"data must be bytes, not {type(data).__name__}")
    # A copy: the caller may reuse its buffer while ours waits.
    return bytes(data)


def _check_code(error_code: int) -> None:
    if not isinstance(error_code, int) or not 0 <= error_code <= _MAX_ERROR_CODE:
        raise LocalProtocolError(f"not an HTTP/2 error code: {error_code!r}")
