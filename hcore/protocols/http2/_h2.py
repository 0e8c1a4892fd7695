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
  :meth:`H2Connection.send_block` and :meth:`H2Connection.send_chunk` feed
  the same connection and stream state machines, the same HPACK encoder and
  the same windows, and write the frames' bytes (RFC 9113 §4.1) straight
  into h2's outgoing buffer.  They lean on h2 internals, so they are used
  only with the h2 versions they were checked against (:data:`FAST_SEND`);
  otherwise they call h2's public methods.
- Receiving a request.  h2's handling of a HEADERS frame that opens a
  stream goes through generic helpers (stream lookup with its debug log
  calls, header validation flags for checks that are off here, a
  processing pipeline that only copies the list).
  :meth:`H2Connection._receive_headers_frame` makes the same checks and
  state changes in the same order (its count of open streams, which also
  forgets closed ones, reads each stream's state once), for a server's new
  stream with no PRIORITY, on the same h2 versions; anything else is h2's
  own.  The frames themselves come from
  :class:`~._frame_buffer.FastFrameBuffer`.
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
    _decode_headers,
)
from h2.connection import H2Connection as _BaseConnection
from h2.errors import ErrorCodes
from h2.events import Event as H2Event
from h2.exceptions import StreamClosedError, StreamIDTooLowError, TooManyStreamsError
from h2.settings import SettingCodes, Settings
from h2.stream import STREAM_OPEN, H2Stream, StreamInputs, StreamState
from h2.utilities import is_informational_response
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, RstStreamFrame

from hcore.protocols.http2._frame_buffer import FAST_PARSE, FastFrameBuffer
from hcore.protocols.http2._hpack import MEMO, MemoDecoder, MemoEncoder
from hcore.protocols.http2._options import DEFAULT_WINDOW, Options

__all__ = ("FAST_SEND", "GoawayFrameReceived", "H2Connection", "open_connection")

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
_STREAM_RECV_HEADERS = StreamInputs.RECV_HEADERS
_STREAM_RECV_END_STREAM = StreamInputs.RECV_END_STREAM
_CLOSED = StreamState.CLOSED
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


class H2Connection(_BaseConnection):
    """h2's connection with a received GOAWAY reported, not acted on."""

    #: Whether :meth:`_receive_headers_frame` may take its direct path: a
    #: server on a checked h2 version, its header validation, normalization
    #: and decoding off (set by :func:`open_connection`).
    fast_receive = False

    def _receive_headers_frame(
        self, frame: HeadersFrame
    ) -> tuple[list[Frame], list[H2Event]]:
        # h2's version, for a HEADERS frame that opens a server's stream:
        # the same checks and state changes in the same order, without the
        # generic helpers (see the module doc).  Anything else is h2's.
        stream_id = frame.stream_id
        streams = self.streams
        flags = frame.flags
        if (
            not self.fast_receive
            or stream_id in streams
            or not stream_id % 2
            or "PRIORITY" in flags
        ):
            return super()._receive_headers_frame(frame)
        # RFC 9113 §5.1.2, as h2 checks it (the count also prunes closed
        # streams, as in h2).
        limit = self.local_settings.max_concurrent_streams
        count = self._open_inbound_streams()
        if count + 1 > limit:
            raise TooManyStreamsError(f"Max inbound streams is {limit}, {count} open")
        headers = _decode_headers(self.decoder, frame.data)
        machine = self.state_machine
        # In an open state h2's transition for RECV_HEADERS leads back to the
        # same state and does nothing else.
        events = (
            []
            if machine.state in _OPEN_STATES
            else machine.process_input(_RECV_HEADERS)
        )
        # h2's _begin_new_stream for an inbound (odd) id.
        highest = self.highest_inbound_stream_id
        if stream_id <= highest:
            raise StreamIDTooLowError(stream_id, highest)
        stream = H2Stream(
            stream_id,
            config=self.config,
            inbound_window_size=self.local_settings.initial_window_size,
            outbound_window_size=self.remote_settings.initial_window_size,
        )
        stream.max_outbound_frame_size = self.max_outbound_frame_size
        streams[stream_id] = stream
        self.highest_inbound_stream_id = stream_id
        end_stream = "END_STREAM" in flags
        if is_informational_response(headers):
            # Not a request: h2's own handling (which refuses it).
            frames, stream_events = stream.receive_headers(headers, end_stream, None)
            return frames, events + stream_events
        # h2's H2Stream.receive_headers for a request on a new stream.
        stream_machine = stream.state_machine
        stream_events = stream_machine.process_input(_STREAM_RECV_HEADERS)
        request = stream_events[0]
        if end_stream:
            ended = stream_machine.process_input(_STREAM_RECV_END_STREAM)
            request.stream_ended = ended[0]  # type: ignore[attr-defined]
            stream_events += ended
        stream._initialize_content_length(headers)
        # With validation, normalization and decoding off, h2's processing
        # of the fields is a copy into a list.
        request.headers = list(headers)  # type: ignore[attr-defined]
        return [], events + stream_events

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
        self._prepare_for_sending(frames)
        return events

    def _open_inbound_streams(self) -> int:
        # h2's open_inbound_streams on a server (its _open_streams(1)),
        # reading each stream's state once instead of through properties:
        # count the open odd streams, forget the closed ones.
        count = 0
        closed = []
        streams = self.streams
        for stream_id, stream in streams.items():
            state = stream.state_machine.state
            if STREAM_OPEN[state] and stream_id % 2:
                count += 1
            elif state == _CLOSED:
                closed.append(stream_id)
        for stream_id in closed:
            self._closed_streams[stream_id] = streams.pop(stream_id).closed_by
        return count

    def send_block(
        self,
        stream_id: int,
        fields: Sequence[tuple[bytes, bytes]],
        end_stream: bool = False,
        *,
        informational: bool = False,
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
        stream_machine.process_input(
            _STREAM_SEND_INFORMATIONAL if informational else _STREAM_SEND_HEADERS
        )
        block = self.encoder.encode(fields)
        if end_stream:
            stream_machine.process_input(_STREAM_SEND_END_STREAM)
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
        machine = self.state_machine
        if machine.state not in _OPEN_STATES:
            machine.process_input(_SEND_DATA)
        stream = self.streams[stream_id]
        stream_machine = stream.state_machine
        stream_machine.process_input(_STREAM_SEND_DATA)
        size = len(data)
        out = self._data_to_send
        if end_stream:
            stream_machine.process_input(_STREAM_SEND_END_STREAM)
            out += _FRAME_HEADER.pack(
                size >> 8, size & 0xFF, _DATA, _END_STREAM, stream_id
            )
        else:
            out += _FRAME_HEADER.pack(size >> 8, size & 0xFF, _DATA, 0, stream_id)
        out += data
        stream.outbound_flow_control_window -= size
        self.outbound_flow_control_window -= size

    def _send_reset(self, stream_id: int, error_code: int) -> None:
        reset = RstStreamFrame(stream_id)
        reset.error_code = error_code
        self._prepare_for_sending([reset])


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
    if FAST_PARSE and FAST_SEND:
        # Nothing was received yet: the fresh buffer takes the old one's place.
        conn.incoming_buffer = FastFrameBuffer(server=not client_side)
    # The configuration above is what the direct receive path assumes.
    conn.fast_receive = FAST_SEND and not client_side
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
    conn.initiate_connection()
    if options.connection_window_size > DEFAULT_WINDOW:
        # RFC 9113 §6.9.2: SETTINGS never change the connection window.
        conn.increment_flow_control_window(
            options.connection_window_size - DEFAULT_WINDOW
        )
    return conn
