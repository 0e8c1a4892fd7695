"""The direct receive path of a server's h2 connection: requests that open streams.

Theory of operation: almost everything a server receives is a request's
HEADERS frame that opens a stream.  h2 handles it through generic helpers:
hyperframe builds a frame object (flag sets, padding and priority fields),
a stream lookup with debug log calls, stream state machine transitions that
build events nobody reads, header validation flags for checks that are off
here, a processing pipeline that only copies the list, and a count of open
streams that reads each stream's state through properties.

:class:`ReceivingConnection` makes the same checks and the same state
changes in the same order, directly, for a server's new stream with no
PRIORITY, on the h2 versions :data:`~._h2.FAST_SEND` names (set up by
:func:`~._h2.open_connection`); anything else is h2's own:

- the frame comes from :class:`~._frame_buffer.FastFrameBuffer` as a
  :class:`~._frame_buffer.RequestBlock` (no hyperframe frame is built);
- the block is decoded by the connection's HPACK decoder, or found in its
  memory (:meth:`~._hpack.MemoDecoder.remembered`), which hands out the same
  tuple for the same bytes, so the checks after it (request or 1xx
  response and content-length here, the protocol's header check) can
  recognise the block they last passed by identity;
- the new stream is set up as h2's ``_begin_new_stream`` and
  ``H2Stream.receive_headers`` leave it, its state machine put straight in
  OPEN or HALF_CLOSED_REMOTE, and one :class:`RequestOpened` stands for
  h2's ``RequestReceived`` and ``StreamEnded``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import cast

from h2.connection import ConnectionInputs, ConnectionState, _decode_headers
from h2.connection import H2Connection as _BaseConnection
from h2.events import Event as H2Event
from h2.exceptions import StreamIDTooLowError, TooManyStreamsError
from h2.stream import STREAM_OPEN, H2Stream, StreamState
from hyperframe.frame import Frame, HeadersFrame

from hcore.protocols.http2._frame_buffer import RequestBlock
from hcore.protocols.http2._hpack import MemoDecoder

__all__ = ("ReceivingConnection", "RequestOpened")

# h2's connection states in which receiving HEADERS changes nothing.
_OPEN_STATES = (ConnectionState.CLIENT_OPEN, ConnectionState.SERVER_OPEN)
_RECV_HEADERS = ConnectionInputs.RECV_HEADERS
_CLOSED = StreamState.CLOSED
_OPEN = StreamState.OPEN
_HALF_CLOSED_REMOTE = StreamState.HALF_CLOSED_REMOTE


class RequestOpened(H2Event):
    """A request opened a stream (the direct path's ``RequestReceived``).

    It stands for h2's ``RequestReceived`` and, with END_STREAM, the
    ``StreamEnded`` after it.
    """

    __slots__ = ("end_stream", "headers", "stream_id")

    def __init__(
        self,
        stream_id: int,
        headers: Sequence[tuple[bytes, bytes]],
        end_stream: bool,
    ) -> None:
        #: The new stream.
        self.stream_id = stream_id
        #: The decoded request header block (not yet checked).
        self.headers = headers
        #: Whether the request has no body (END_STREAM).
        self.end_stream = end_stream


class ReceivingConnection(_BaseConnection):
    """h2's connection with a direct path for requests that open streams."""

    #: Whether :meth:`_receive_headers_frame` may take its direct path: a
    #: server on a checked h2 version, its header validation, normalization
    #: and decoding off (set by :func:`~._h2.open_connection`).
    fast_receive = False
    #: Where our and the peer's settings keep SETTINGS_INITIAL_WINDOW_SIZE
    #: (the current value first), for the direct receive path: the
    #: settings' properties cost more than the rest of a new stream's set-up.
    initial_windows: tuple[deque[int], deque[int]]
    # The last request block (as the decoder's memory holds it) that was
    # found no response and whose content-length was read, and the length.
    _known_request: tuple[object, int | None] = (None, None)

    def _receive_headers_frame(
        self, frame: HeadersFrame
    ) -> tuple[list[Frame], list[H2Event]]:
        # h2's version, for a HEADERS frame that opens a server's stream,
        # is _open_request; anything else is h2's.
        stream_id = frame.stream_id
        flags = frame.flags
        if (
            not self.fast_receive
            or stream_id in self.streams
            or not stream_id % 2
            or "PRIORITY" in flags
        ):
            return super()._receive_headers_frame(frame)
        return self._receive_request_block(
            RequestBlock(stream_id, "END_STREAM" in flags, frame.data)
        )

    def _receive_request_block(
        self, block: RequestBlock
    ) -> tuple[list[Frame], list[H2Event]]:
        # h2's handling of a HEADERS frame that opens a server's stream with
        # no PRIORITY: the same checks and state changes in the same order,
        # without the generic helpers (see the module doc).  The frame
        # buffer yields these only to a server on the direct path, and only
        # on odd streams (see ._frame_buffer).
        stream_id = block.stream_id
        if stream_id in self.streams:
            return super()._receive_headers_frame(block.as_frame())
        end_stream = block.end_stream
        # RFC 9113 §5.1.2, as h2 checks it (the count also prunes closed
        # streams, as in h2).
        limit = self.local_settings.max_concurrent_streams
        count = self._open_inbound_streams(limit)
        if count + 1 > limit:
            raise TooManyStreamsError(f"Max inbound streams is {limit}, {count} open")
        decoder = self.decoder
        remembered = (
            decoder.remembered(block.data) if type(decoder) is MemoDecoder else None
        )
        headers: Sequence[tuple[bytes, bytes]]
        if remembered is None:
            # (h2's decoding returns a list of bytes pairs with raw=True.)
            headers = cast(
                "list[tuple[bytes, bytes]]", _decode_headers(decoder, block.data)
            )
        else:
            headers = remembered
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
        local, remote = self.initial_windows
        stream = H2Stream(
            stream_id,
            config=self.config,
            inbound_window_size=local[0],
            outbound_window_size=remote[0],
        )
        stream.max_outbound_frame_size = self.max_outbound_frame_size
        self.streams[stream_id] = stream
        self.highest_inbound_stream_id = stream_id
        known, length = self._known_request
        if headers is not known:
            # h2's is_informational_response: a 1xx :status among the
            # pseudo-header fields, which lead the block.  (A block known
            # from the last request passed it.)
            for name, value in headers:
                if name[:1] != b":":
                    break
                if name == b":status":
                    if value[:1] == b"1":
                        # Not a request: h2's own handling (which refuses it).
                        frames, stream_events = stream.receive_headers(
                            headers, end_stream, None
                        )
                        return frames, events + stream_events
                    break
        # h2's H2Stream.receive_headers for a request on a new stream: the
        # transitions IDLE -> OPEN (request_received) and, with END_STREAM,
        # OPEN -> HALF_CLOSED_REMOTE (stream_half_closed) change only these
        # attributes besides making the events RequestOpened stands for.
        stream_machine = stream.state_machine
        stream_machine.client = False
        stream_machine.headers_received = True
        stream_machine.state = _HALF_CLOSED_REMOTE if end_stream else _OPEN
        if headers is known:
            # The same block as the last request's (the decoder's memory):
            # the same content-length, which depends on nothing else on a
            # stream that has sent no request.
            stream._expected_content_length = length
        else:
            stream._initialize_content_length(headers)
            if type(headers) is tuple:
                self._known_request = (headers, stream._expected_content_length)
        # With validation, normalization and decoding off, h2's processing
        # of the fields is a copy into a list: the decoder's list (or the
        # memo's tuple) serves.
        events.append(RequestOpened(stream_id, headers, end_stream))
        return [], events

    def _open_inbound_streams(self, limit: int) -> int:
        # h2's open_inbound_streams on a server (its _open_streams(1)):
        # forget the closed streams, count the open odd ones.  The count
        # only matters against the limit; the streams left are a bound on
        # it, so they are counted one by one only when that bound reaches
        # the limit.
        streams = self.streams
        closed = [sid for sid, s in streams.items() if s.state_machine.state is _CLOSED]
        if closed:
            forgotten = self._closed_streams
            for stream_id in closed:
                forgotten[stream_id] = streams.pop(stream_id).closed_by
        if len(streams) < limit:
            return len(streams)
        return sum(
            1
            for stream_id, stream in streams.items()
            if STREAM_OPEN[stream.state_machine.state] and stream_id % 2
        )
