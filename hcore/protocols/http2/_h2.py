"""The h2 connection object, configured and adjusted for hcore's protocol.

Three things about h2 are changed here, each with the least reach we found:

- Received GOAWAY.  h2 closes its connection state machine when a GOAWAY
  arrives and drops the frames it had queued for sending, so the streams at
  or below the GOAWAY's last stream id could not finish.  RFC 9113 §6.8 says
  they may.  :class:`H2Connection` reports the frame as
  :class:`GoawayFrameReceived` and leaves the state alone; the protocol
  stops opening streams itself.
- Concurrency.  h2 enforces its advertised SETTINGS_MAX_CONCURRENT_STREAMS
  by closing the connection.  A client may legitimately open more streams
  before our SETTINGS reach it, and RFC 9113 §5.1.2 allows refusing just the
  extra streams, so the protocol refuses them with REFUSED_STREAM and h2
  only enforces a higher ceiling (:class:`_LocalSettings`), which bounds
  the streams one read can create.
- Header checks.  h2's own validation treats a malformed header block as a
  connection error and changes stream state before it validates what we
  send; both are switched off and done in :mod:`._headers` instead.

Some things are only made cheaper, with the same state changes and bytes:

- h2 formats every frame it receives for a trace log (``repr(frame)``,
  several microseconds) before its logger can say that nothing is logged;
  :meth:`H2Connection._receive_frame` handles frames the same way without
  that.
- Sending.  h2's ``send_headers`` and ``send_data`` build frame objects,
  re-encode and re-scan the header block (for checks that are off here, see
  above), recount open streams and serialize through generic code.
  :meth:`H2Connection.send_block`, :meth:`H2Connection.send_chunk` and
  :meth:`H2Connection.send_if_room` (which also checks the windows and
  frame size, as ``local_flow_control_window`` would) feed the same
  connection and stream state machines, the same HPACK encoder and the
  same windows, and write the frames' bytes (RFC 9113 §4.1) straight into
  h2's outgoing buffer.  The stream transitions a response makes (SEND_HEADERS
  and SEND_DATA in OPEN or HALF_CLOSED_REMOTE, END_STREAM from those two
  states) are made by setting what h2's transition table would set; any
  other goes through h2's state machine.  A response block the server's
  check remembers keeps its encoding beside it
  (:class:`~._hpack.RememberedBlock`).  They lean on h2 internals, so they
  are used only with the h2 versions they were checked against
  (:data:`FAST_SEND`); otherwise they call h2's public methods.
- Receiving a request: see :mod:`._h2_receive`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import h2
from h2.config import H2Configuration
from h2.connection import (
    AllowedStreamIDs,
    ConnectionInputs,
    ConnectionState,
)
from h2.errors import ErrorCodes
from h2.events import Event as H2Event
from h2.exceptions import StreamClosedError, StreamIDTooLowError, TooManyStreamsError
from h2.settings import SettingCodes, Settings
from h2.stream import (
    H2Stream,
    H2StreamStateMachine,
    StreamClosedBy,
    StreamInputs,
    StreamState,
)
from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame

from hcore.protocols.http2._frame_buffer import (
    FAST_PARSE,
    FastFrameBuffer,
    RequestBlock,
)
from hcore.protocols.http2._h2_receive import ReceivingConnection
from hcore.protocols.http2._hpack import (
    MEMO,
    MemoDecoder,
    MemoEncoder,
    RememberedBlock,
)
from hcore.protocols.http2._options import DEFAULT_WINDOW, Options

__all__ = (
    "FAST_SEND",
    "GoawayFrameReceived",
    "H2Connection",
    "open_connection",
)

#: Whether the direct send paths may be used: the h2 internals they touch
#: (the state machines, ``streams``, ``encoder``, ``_data_to_send``) were
#: checked in these releases.
FAST_SEND = h2.__version__.split(".")[:2] in (["4", "2"], ["4", "3"], ["4", "4"])

# RFC 9113 §4.1: length (24 bits, as 16 + 8), type, flags, stream id.
_FRAME_HEADER = struct.Struct(">HBBBL")
# RFC 9113 §6.1, §6.2, §6.10
_DATA = 0x0
_HEADERS = 0x1
_CONTINUATION = 0x9
_END_STREAM = 0x1
_END_HEADERS = 0x4
# h2's connection states in which sending HEADERS or DATA changes nothing
# (the transition leads back to the same state and has no action).
_OPEN_STATES = (ConnectionState.CLIENT_OPEN, ConnectionState.SERVER_OPEN)
_SEND_HEADERS = ConnectionInputs.SEND_HEADERS
_RECV_HEADERS = ConnectionInputs.RECV_HEADERS
_CLOSED = StreamState.CLOSED
_OPEN = StreamState.OPEN
_HALF_CLOSED_REMOTE = StreamState.HALF_CLOSED_REMOTE
_HALF_CLOSED_LOCAL = StreamState.HALF_CLOSED_LOCAL
# The stream states in which h2's SEND_HEADERS (for a response) and
# SEND_DATA transitions lead back to the same state.
_RESPONDING = (_OPEN, _HALF_CLOSED_REMOTE)
_SENT_END_STREAM = StreamClosedBy.SEND_END_STREAM
_SEND_DATA = ConnectionInputs.SEND_DATA
_STREAM_SEND_HEADERS = StreamInputs.SEND_HEADERS
_STREAM_SEND_INFORMATIONAL = StreamInputs.SEND_INFORMATIONAL_HEADERS
_STREAM_SEND_DATA = StreamInputs.SEND_DATA
_STREAM_SEND_END_STREAM = StreamInputs.SEND_END_STREAM


class GoawayFrameReceived(H2Event):
    """A GOAWAY frame arrived (in place of h2's ``ConnectionTerminated``)."""

    def __init__(self, last_stream_id: int, error_code: int) -> None:
        self.last_stream_id = last_stream_id
        self.error_code = error_code


class H2Connection(ReceivingConnection):
    """h2's connection with a received GOAWAY reported, not acted on."""

    def _receive_goaway_frame(
        self, frame: GoAwayFrame
    ) -> tuple[list[Frame], list[H2Event]]:
        # RFC 9113 §6.8: streams up to last_stream_id may still complete, so
        # neither close the state machine nor drop queued frames as h2 does.
        return [], [GoawayFrameReceived(frame.last_stream_id, frame.error_code)]

    def _receive_frame(self, frame: Frame) -> list[H2Event]:
        # h2's own version starts by formatting the frame for its trace log,
        # which our configuration never writes; the handling is the same.
        events: list[H2Event]
        try:
            if type(frame) is RequestBlock:
                # (Not in h2's dispatch table: one entry more would grow it.)
                frames, events = self._receive_request_block(frame)
            else:
                frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except StreamClosedError as exc:
            # RFC 9113 §5.4.2: a frame on a stream we reset earns another
            # RST_STREAM; on a stream closed otherwise it is a connection
            # error, which h2's caller turns into GOAWAY.
            if not self._stream_is_closed_by_reset(exc.stream_id):
                raise
            self._send_reset(exc.stream_id, exc.error_code)
            return list(exc._events)
        except StreamIDTooLowError as exc:
            # A stream id below ones already seen: the stream is closed.
            # After our reset that is a stream error (RFC 9113 §5.4.2);
            # after END_STREAM, STREAM_CLOSED for the connection (§5.1);
            # implicitly closed, h2's PROTOCOL_ERROR.
            if self._stream_is_closed_by_reset(exc.stream_id):
                self._send_reset(exc.stream_id, ErrorCodes.STREAM_CLOSED)
                return []
            if self._stream_is_closed_by_end(exc.stream_id):
                raise StreamClosedError(exc.stream_id) from exc
            raise
        if frames:
            self._prepare_for_sending(frames)
        return events

    def send_block(
        self,
        stream_id: int,
        fields: Sequence[tuple[bytes, bytes]],
        end_stream: bool = False,
        *,
        informational: bool = False,
        place: RememberedBlock | None = None,
    ) -> None:
        """Send a header block on a stream h2 already knows, as ``send_headers``.

        On a new stream (a client's request) h2's admission check runs as
        in ``send_headers`` (it also prunes h2's closed streams).  The block
        must already be checked (:mod:`._headers`: pseudo-headers first), and
        ``informational`` must mark a 1xx response, as h2's own scan would.

        :param stream_id: the stream.
        :param fields: the checked block.
        :param end_stream: whether END_STREAM goes with it.
        :param informational: whether it is a 1xx response (server).
        :param place: where the caller remembers this block's encoding
            (see :meth:`~._hpack.MemoEncoder.encode_remembered`).
        """
        stream = self.streams.get(stream_id)
        opening = stream is None
        if not FAST_SEND or (opening and not self.config.client_side):
            self.send_headers(stream_id, fields, end_stream=end_stream)
            return
        if opening:
            limit = self.remote_settings.max_concurrent_streams
            count = self.open_outbound_streams
            if count + 1 > limit:
                raise TooManyStreamsError(
                    f"Max outbound streams is {limit}, {count} open"
                )
        machine = self.state_machine
        if machine.state not in _OPEN_STATES:
            machine.process_input(_SEND_HEADERS)
        method = authority = None
        if stream is None:
            stream = self._begin_new_stream(stream_id, AllowedStreamIDs.ODD)
            for name, value in fields:
                if name[:1] != b":":
                    break
                if name == b":method":
                    method = value
                elif name == b":authority":
                    authority = value
        # h2 changes the stream's state before encoding: the encoding changes
        # the HPACK context irreversibly.
        stream_machine = stream.state_machine
        if (
            stream_machine.client is False
            and not stream_machine.headers_sent
            and not informational
            and stream_machine.state in _RESPONDING
        ):
            # A server's response: h2's transition leads back to the same
            # state, and its response_sent only marks the headers sent.
            stream_machine.headers_sent = True
        else:
            stream_machine.process_input(
                _STREAM_SEND_INFORMATIONAL if informational else _STREAM_SEND_HEADERS
            )
        encoder = self.encoder
        if place is not None and type(encoder) is MemoEncoder:
            block = encoder.encode_remembered(fields, place)
        else:
            block = encoder.encode(fields)
        if end_stream:
            _send_end_stream(stream_machine)
        # h2 remembers the method of what it sends (a response or trailers
        # have none) and a request's authority.
        stream.request_method = method
        if opening:
            stream._authority = authority
        out = self._data_to_send
        size = len(block)
        limit = self.max_outbound_frame_size
        flags = _END_STREAM if end_stream else 0
        if size <= limit:
            out += _FRAME_HEADER.pack(
                size >> 8, size & 0xFF, _HEADERS, flags | _END_HEADERS, stream_id
            )
            out += block
            return
        # RFC 9113 §6.10: the rest of the block follows in CONTINUATION
        # frames, END_HEADERS on the last.
        kind = _HEADERS
        for start in range(0, size, limit):
            piece = block[start : start + limit]
            length = len(piece)
            if start + limit >= size:
                flags |= _END_HEADERS
            out += _FRAME_HEADER.pack(
                length >> 8, length & 0xFF, kind, flags, stream_id
            )
            out += piece
            kind = _CONTINUATION
            flags = 0

    def send_chunk(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send one DATA frame, as ``send_data``, on a stream h2 knows.

        The caller has checked that ``data`` fits the peer's windows and
        frame size (RFC 9113 §4.2, §6.9), as h2 would.

        :param stream_id: the stream.
        :param data: the payload; may be empty.
        :param end_stream: whether END_STREAM goes with it.
        """
        if not FAST_SEND:
            self.send_data(stream_id, data, end_stream=end_stream)
            return
        self._chunk(self.streams[stream_id], data, end_stream)

    def send_if_room(self, stream_id: int, data: bytes, end_stream: bool) -> bool:
        """Send ``data`` as one DATA frame if the windows and frame size allow.

        As :meth:`send_chunk` after checking ``data`` against
        SETTINGS_MAX_FRAME_SIZE and both flow-control windows (RFC 9113
        §4.2, §6.9).  Nothing is sent for empty data without END_STREAM.

        :param stream_id: the stream.
        :param data: the payload; may be empty.
        :param end_stream: whether END_STREAM goes with it.
        :return: whether it fitted (and went); if not, nothing changed.
        """
        size = len(data)
        if not FAST_SEND:
            if size and size > min(
                self.max_outbound_frame_size, self.local_flow_control_window(stream_id)
            ):
                return False
            if size or end_stream:
                self.send_data(stream_id, data, end_stream=end_stream)
            return True
        if size:
            stream = self.streams.get(stream_id)
            if stream is None:
                # h2's error for a stream it no longer knows.
                stream = self._get_stream_by_id(stream_id)
            if (
                size > self.max_outbound_frame_size
                or size > self.outbound_flow_control_window
                or size > stream.outbound_flow_control_window
            ):
                return False
        elif end_stream:
            stream = self.streams[stream_id]
        else:
            return True
        self._chunk(stream, data, end_stream)
        return True

    def _chunk(self, stream: H2Stream, data: bytes, end_stream: bool) -> None:
        # h2's send_data, for a payload that fits, without padding.
        machine = self.state_machine
        if machine.state not in _OPEN_STATES:
            machine.process_input(_SEND_DATA)
        stream_machine = stream.state_machine
        if stream_machine.state not in _RESPONDING:
            # (In OPEN and HALF_CLOSED_REMOTE h2's transition changes nothing.)
            stream_machine.process_input(_STREAM_SEND_DATA)
        size = len(data)
        out = self._data_to_send
        if end_stream:
            _send_end_stream(stream_machine)
            out += _FRAME_HEADER.pack(
                size >> 8, size & 0xFF, _DATA, _END_STREAM, stream.stream_id
            )
        else:
            out += _FRAME_HEADER.pack(
                size >> 8, size & 0xFF, _DATA, 0, stream.stream_id
            )
        out += data
        stream.outbound_flow_control_window -= size
        self.outbound_flow_control_window -= size

    def _send_reset(self, stream_id: int, error_code: int) -> None:
        reset = RstStreamFrame(stream_id)
        reset.error_code = error_code
        self._prepare_for_sending([reset])


def _send_end_stream(machine: H2StreamStateMachine) -> None:
    # h2's SEND_END_STREAM transition; from the two states a stream sends
    # END_STREAM in, directly: OPEN -> HALF_CLOSED_LOCAL does nothing else,
    # HALF_CLOSED_REMOTE -> CLOSED records how it closed (send_end_stream).
    state = machine.state
    if state is _HALF_CLOSED_REMOTE:
        machine.state = _CLOSED
        machine.stream_closed_by = _SENT_END_STREAM
    elif state is _OPEN:
        machine.state = _HALF_CLOSED_LOCAL
    else:
        machine.process_input(_STREAM_SEND_END_STREAM)


class _LocalSettings(Settings):
    """Our settings, with a concurrency ceiling for h2 above the one we advertise."""

    def __init__(
        self, *, client: bool, initial_values: dict[SettingCodes, int], ceiling: int
    ) -> None:
        super().__init__(client=client, initial_values=initial_values)
        self._ceiling = ceiling

    # Read-only on purpose: only h2's admission check reads it, and nothing
    # may lower the ceiling behind the protocol's back.
    @property  # type: ignore[misc]
    def max_concurrent_streams(self) -> int:
        """The limit h2 checks new inbound streams against (the ceiling)."""
        return self._ceiling


def open_connection(options: Options, *, client_side: bool) -> H2Connection:
    """Make an h2 connection with our settings and queue its preface.

    :param options: the limits.
    :param client_side: whether this is the client's end.
    :return: the connection; its ``data_to_send()`` holds the preface (client),
        the SETTINGS frame and, for a larger connection window, a
        WINDOW_UPDATE.
    """
    config = H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )
    conn = H2Connection(config=config)
    # The configuration above is what the direct receive path assumes.
    conn.fast_receive = FAST_SEND and not client_side
    if FAST_PARSE and FAST_SEND:
        # Nothing was received yet: the fresh buffer takes the old one's place.
        conn.incoming_buffer = FastFrameBuffer(
            server=not client_side, requests=conn.fast_receive
        )
    values = {
        SettingCodes.INITIAL_WINDOW_SIZE: options.initial_window_size,
        SettingCodes.MAX_HEADER_LIST_SIZE: options.max_header_list_size,
    }
    limit = options.max_concurrent_streams
    if client_side:
        # RFC 9113 §6.5.2: we never accept server push.
        values[SettingCodes.ENABLE_PUSH] = 0
    else:
        values[SettingCodes.MAX_CONCURRENT_STREAMS] = limit
        if options.enable_connect_protocol:
            # RFC 8441 §3
            values[SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
    # h2 also runs this check for HEADERS on streams it has forgotten, which
    # must reach its stream-closed handling, so the ceiling is never small.
    ceiling = limit + max(limit, 1000)
    # Initial values, not an update: they are what our first SETTINGS frame
    # says, so there is nothing for the peer's ACK to change later.
    conn.local_settings = _LocalSettings(
        client=client_side, initial_values=values, ceiling=ceiling
    )
    # The HPACK decoder cannot resume after giving up on a block, so its cap
    # is the connection-killing one; the advertised size is checked per
    # stream by the protocol.
    if MEMO:
        # Both coders are fresh: nothing was coded yet (see ._hpack).
        decoder = MemoDecoder(2 * options.max_header_list_size)
        decoder.max_allowed_table_size = conn.decoder.max_allowed_table_size
        conn.decoder = decoder
        conn.encoder = MemoEncoder()
    else:
        conn.decoder.max_header_list_size = 2 * options.max_header_list_size
    if conn.fast_receive:
        # Settings keep each value's history in one deque for good (h2's
        # Settings, on the versions FAST_SEND names).
        code = SettingCodes.INITIAL_WINDOW_SIZE
        conn.initial_windows = (
            conn.local_settings._settings[code],
            conn.remote_settings._settings[code],
        )
    conn.initiate_connection()
    if options.connection_window_size > DEFAULT_WINDOW:
        # RFC 9113 §6.9.2: SETTINGS never change the connection window.
        conn.increment_flow_control_window(
            options.connection_window_size - DEFAULT_WINDOW
        )
    return conn
