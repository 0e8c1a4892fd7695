"""FastFrameBuffer yields what h2's FrameBuffer yields, frame by frame.

The direct path for whole plain HEADERS frames (see ``_frame_buffer``) only
saves CPU: these tests feed the same bytes, in the same pieces, to both
buffers and compare every frame (its type, stream, flags, payload, body
length and other fields) and every error.
"""

from __future__ import annotations

import struct

from h2.frame_buffer import FrameBuffer
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from hcore.protocols.http2 import H2ClientProtocol, H2ServerProtocol
from hcore.protocols.http2._frame_buffer import FAST_PARSE, FastFrameBuffer
from tests.hcore.http2_helpers import PREFACE


def _raw(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    size = len(payload)
    return struct.pack(">HBBBL", size >> 8, size & 0xFF, kind, flags, stream_id) + (
        payload
    )


_STREAM_IDS = st.sampled_from([0, 1, 3, 2**31 + 5, 7])
_PAYLOADS = st.sampled_from([b"", b"\x82\x86\x84", b"\x05abcde\x00\x00", b"x" * 40])
_HEADERS = st.builds(
    lambda flags, sid, payload: _raw(0x1, flags, sid, payload),
    st.sampled_from([0x0, 0x1, 0x4, 0x5, 0x8, 0xC, 0x20, 0x24, 0x25, 0x2D, 0xFF]),
    _STREAM_IDS,
    _PAYLOADS,
)
_OTHERS = st.one_of(
    st.builds(
        lambda sid, p: ContinuationFrame(sid, p).serialize(), st.just(1), _PAYLOADS
    ),
    st.builds(
        lambda sid, p: ContinuationFrame(sid, p, flags=["END_HEADERS"]).serialize(),
        st.sampled_from([1, 3]),
        _PAYLOADS,
    ),
    st.builds(lambda p: DataFrame(1, p).serialize(), _PAYLOADS),
    st.just(PingFrame(0, b"12345678").serialize()),
    st.builds(lambda sid, p: _raw(0x1, 0x4, sid, p), _STREAM_IDS, st.just(b"y" * 300)),
    st.binary(max_size=12),
)
_STREAM = st.lists(st.one_of(_HEADERS, _HEADERS, _OTHERS), max_size=12)


def _describe(frame: Frame) -> object:
    fields = {
        key: value
        for key, value in vars(frame).items()
        if key not in ("flags",)  # compared as a set below
    }
    return type(frame), sorted(frame.flags), fields


def _run(buffer: FrameBuffer, pieces: list[bytes], max_size: int) -> list[object]:
    seen: list[object] = []
    buffer.max_frame_size = max_size
    for piece in pieces:
        try:
            buffer.add_data(piece)
            seen.extend(_describe(frame) for frame in buffer)
        except Exception as exc:
            seen.append((type(exc), str(exc)))
            return seen
    seen.append(bytes(buffer._data))
    return seen


@settings(max_examples=100, deadline=None)
@given(
    _STREAM,
    st.lists(st.integers(1, 40), max_size=6),
    st.sampled_from([16_384, 64, 5]),
    st.booleans(),
)
def test_the_fast_buffer_yields_what_h2s_does(
    frames: list[bytes], cuts: list[int], max_size: int, server: bool
) -> None:
    data = (PREFACE if server else b"") + b"".join(frames)
    pieces: list[bytes] = []
    start = 0
    for cut in cuts:
        pieces.append(data[start : start + cut])
        start += cut
    pieces.append(data[start:])
    assert _run(FastFrameBuffer(server=server), pieces, max_size) == _run(
        FrameBuffer(server=server), pieces, max_size
    )


def test_a_plain_headers_frame_takes_the_direct_path() -> None:
    buffer = FastFrameBuffer()
    buffer.max_frame_size = 16_384
    frame = HeadersFrame(2**31 + 3, b"\x82", flags=["END_STREAM", "END_HEADERS"])
    buffer.add_data(frame.serialize())
    (parsed,) = list(buffer)
    assert type(parsed) is HeadersFrame
    assert parsed.stream_id == 3
    assert set(parsed.flags) == {"END_STREAM", "END_HEADERS"}
    assert (parsed.data, parsed.body_len) == (b"\x82", 1)
    assert buffer._data == bytearray()


def test_protocols_use_the_fast_buffer() -> None:
    assert FAST_PARSE
    for protocol in (H2ClientProtocol(), H2ServerProtocol()):
        assert type(protocol._conn.incoming_buffer) is FastFrameBuffer
