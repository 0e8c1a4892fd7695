"""GOAWAY, the part of the HTTP/3 control stream aioquic leaves to us.

Theory of operation
-------------------

aioquic 1.7's ``H3Connection`` reads the peer's control stream (RFC 9114
§6.2.1) for SETTINGS but skips the payload of GOAWAY frames without telling
anybody, and it has no call to send one.  Sending is simple: the frame goes
on our own control stream, whose id we note before ``H3Connection`` opens it.

Receiving needs the peer's control stream read a second time.
:class:`ControlStreamReader` is fed the same bytes ``H3Connection`` gets on
every stream the peer opened in one direction.  It reads the stream type
(RFC 9114 §6.2); a stream of another type is forgotten at once.  On the
control stream it walks the frames (type, length, payload; RFC 9114 §7.1),
skipping every payload but GOAWAY's without keeping it, so at most one frame
header or one GOAWAY payload is ever buffered.  Everything else about the
control stream (SETTINGS first, no DATA, a single control stream) is
``H3Connection``'s to check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import ErrorCode, FrameType, StreamType, encode_frame

__all__ = ("ControlStreamError", "ControlStreamReader", "encode_goaway")

# A GOAWAY payload is one variable-length integer (RFC 9114 §7.2.6), at most
# eight bytes (RFC 9000 §16).
_MAX_GOAWAY_PAYLOAD = 8


def encode_goaway(identifier: int) -> bytes:
    """Encode a GOAWAY frame (RFC 9114 §7.2.6).

    :param identifier: a client-initiated bidirectional stream id (sent by a
        server) or a push id (sent by a client).
    """
    return encode_frame(FrameType.GOAWAY, encode_uint_var(identifier))


class ControlStreamError(Exception):
    """The peer's control stream carries a malformed GOAWAY frame."""

    def __init__(self, error_code: int, reason: str) -> None:
        super().__init__(reason)
        #: The HTTP/3 error code to close the connection with.
        self.error_code = error_code
        #: Why.
        self.reason = reason


def _pull_varint(data: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    # RFC 9000 §16: the two high bits of the first byte give the length.
    if pos >= len(data):
        return None
    size = 1 << (data[pos] >> 6)
    if pos + size > len(data):
        return None
    value = data[pos] & 0x3F
    for byte in data[pos + 1 : pos + size]:
        value = (value << 8) | byte
    return value, size


@dataclass
class _ControlStream:
    # Bytes of an incomplete frame header or GOAWAY payload.
    pending: bytearray = field(default_factory=bytearray)
    # Payload bytes of the current (ignored) frame still to skip.
    skip: int = 0
    # Length of the GOAWAY payload being collected, if one is.
    goaway_length: int | None = None


class ControlStreamReader:
    """Finds GOAWAY frames in what the peer sends on its control stream."""

    def __init__(self) -> None:
        # Peer streams whose type is not known yet: the bytes seen so far.
        self._untyped: dict[int, bytearray] = {}
        # Streams known to be of another type.
        self._other: set[int] = set()
        self._control_id: int | None = None
        self._control = _ControlStream()

    def feed(self, stream_id: int, data: bytes, end_stream: bool = False) -> list[int]:
        """Read bytes the peer sent on one of its unidirectional streams.

        :param stream_id: the QUIC stream id.
        :param data: the bytes, in stream order.
        :param end_stream: whether the peer ended the stream with them.
        :return: the identifiers of the GOAWAY frames completed by ``data``.
        :raises ControlStreamError: on a malformed GOAWAY frame.
        """
        if stream_id == self._control_id:
            return self._read_frames(data)
        if end_stream:
            # Nothing more comes on it; a control stream must not end at all
            # (H3Connection closes the connection if it does).
            self.forget(stream_id)
            return []
        if stream_id in self._other or not data:
            return []
        seen = self._untyped.setdefault(stream_id, bytearray())
        seen += data
        pulled = _pull_varint(seen, 0)
        if pulled is None:
            return []
        del self._untyped[stream_id]
        stream_type, size = pulled
        if stream_type != StreamType.CONTROL or self._control_id is not None:
            # H3Connection refuses a second control stream.
            self._other.add(stream_id)
            return []
        self._control_id = stream_id
        return self._read_frames(bytes(seen[size:]))

    def forget(self, stream_id: int) -> None:
        """Stop tracking a stream the peer ended or reset."""
        self._untyped.pop(stream_id, None)
        self._other.discard(stream_id)

    def _read_frames(self, data: bytes) -> list[int]:
        state = self._control
        buf = state.pending + data if state.pending else data
        state.pending = bytearray()
        found: list[int] = []
        pos = 0
        while pos < len(buf):
            if state.skip:
                step = min(state.skip, len(buf) - pos)
                state.skip -= step
                pos += step
                continue
            if state.goaway_length is not None:
                end = pos + state.goaway_length
                if end > len(buf):
                    break
                found.append(self._goaway(buf[pos:end]))
                state.goaway_length = None
                pos = end
                continue
            frame_type = _pull_varint(buf, pos)
            length = _pull_varint(buf, pos + frame_type[1]) if frame_type else None
            if frame_type is None or length is None:
                break
            pos += frame_type[1] + length[1]
            if frame_type[0] == FrameType.GOAWAY:
                if not 0 < length[0] <= _MAX_GOAWAY_PAYLOAD:
                    raise ControlStreamError(
                        ErrorCode.H3_FRAME_ERROR, "GOAWAY frame has a bad length"
                    )
                state.goaway_length = length[0]
            else:
                state.skip = length[0]
        state.pending = bytearray(buf[pos:])
        return found

    @staticmethod
    def _goaway(payload: bytes | bytearray) -> int:
        pulled = _pull_varint(payload, 0)
        if pulled is None or pulled[1] != len(payload):
            raise ControlStreamError(
                ErrorCode.H3_FRAME_ERROR, "GOAWAY payload is not one integer"
            )
        return pulled[0]
