"""The control-stream reader for GOAWAY, and peers that misbehave on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import ErrorCode, FrameType, encode_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from hcore import Datagram, Headers
from hcore.events import ConnectionTerminated, GoawayReceived, HeadersReceived
from hcore.protocols.http3 import (
    AioquicProtocol,
    HTTP3ClientFactory,
    HTTP3ServerFactory,
)
from hcore.protocols.http3._control import (
    ControlStreamError,
    ControlStreamReader,
    encode_goaway,
)
from tests.hcore.quic_pairs import QUICPair, TLSFiles, drain, make_tls_files

SETTINGS = encode_frame(FrameType.SETTINGS, encode_uint_var(1) + encode_uint_var(0))
UNKNOWN = encode_frame(0x21, b"x" * 300)
CONTROL = encode_uint_var(0)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_goaway_found_however_the_bytes_are_split(cuts: list[int]) -> None:
    stream = (
        CONTROL
        + SETTINGS
        + UNKNOWN
        + encode_goaway(1 << 40)
        + UNKNOWN
        + encode_goaway(8)
        + encode_goaway(4)
    )
    reader = ControlStreamReader()
    found: list[int] = []
    for piece in split(stream, cuts):
        found += reader.feed(3, piece)
    assert found == [1 << 40, 8, 4]


def test_goaway_found_byte_by_byte() -> None:
    stream = CONTROL + SETTINGS + encode_goaway(1 << 40) + UNKNOWN + encode_goaway(4)
    reader = ControlStreamReader()
    found: list[int] = []
    for n in range(len(stream)):
        found += reader.feed(3, stream[n : n + 1])
    assert found == [1 << 40, 4]


def test_other_streams_are_ignored() -> None:
    reader = ControlStreamReader()
    assert reader.feed(3, encode_uint_var(2) + encode_goaway(4)) == []  # QPACK
    assert reader.feed(3, encode_goaway(4)) == []
    assert reader.feed(7, b"") == []
    assert reader.feed(7, encode_uint_var(0x21) + encode_goaway(4)) == []  # unknown
    assert reader.feed(11, CONTROL + encode_goaway(4)) == [4]
    # H3Connection refuses a second control stream; we do not read one.
    assert reader.feed(15, CONTROL + encode_goaway(0)) == []
    assert reader.feed(11, encode_goaway(0)) == [0]


def test_ended_and_reset_streams_are_forgotten() -> None:
    reader = ControlStreamReader()
    reader.feed(3, b"\x40")  # half of a two-byte stream type
    reader.feed(7, encode_uint_var(2))
    reader.feed(3, b"", end_stream=True)
    reader.forget(7)
    assert reader._untyped == {} and reader._other == set()


@pytest.mark.parametrize(
    "frame",
    [
        encode_frame(FrameType.GOAWAY, b""),
        encode_frame(FrameType.GOAWAY, b"\x00" * 9),
        encode_frame(FrameType.GOAWAY, b"\x00\x00"),  # two integers
        encode_frame(FrameType.GOAWAY, b"\x40"),  # half an integer
    ],
)
def test_malformed_goaway(frame: bytes) -> None:
    with pytest.raises(ControlStreamError) as caught:
        ControlStreamReader().feed(3, CONTROL + SETTINGS + frame)
    assert caught.value.error_code == ErrorCode.H3_FRAME_ERROR


# -- peers that send bad GOAWAY frames ---------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def pair(tls: TLSFiles) -> QUICPair:
    made = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    made.pump()
    return made


def request() -> Headers:
    return [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b":path", b"/"),
    ]


def send_on_control_stream(protocol: object, data: bytes) -> None:
    # Plays a peer other than hcore, writing raw frames on its control stream.
    assert isinstance(protocol, AioquicProtocol) and protocol._quic is not None
    protocol._quic.send_stream_data(protocol._control_stream_id, data)


def ends(pair: QUICPair) -> tuple[list[object], list[object]]:
    pair.run_until(
        lambda: pair.client.get_timer() is None and pair.server.get_timer() is None,
        max_time=10,
    )
    return list(drain(pair.client)), list(drain(pair.server))


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([encode_frame(FrameType.GOAWAY, b"")], ErrorCode.H3_FRAME_ERROR),
        ([encode_goaway(2)], ErrorCode.H3_ID_ERROR),  # not a request stream
        ([encode_goaway(4), encode_goaway(8)], ErrorCode.H3_ID_ERROR),  # increased
    ],
)
def test_client_closes_on_a_bad_goaway(
    pair: QUICPair, frames: list[bytes], code: int
) -> None:
    for frame in frames:
        send_on_control_stream(pair.server, frame)
        pair.pump()
    client_events, server_events = ends(pair)
    assert client_events[-1] == ConnectionTerminated(code, client_events[-1].message)  # type: ignore[attr-defined]
    assert isinstance(server_events[-1], ConnectionTerminated)
    assert server_events[-1].error_code == code


def test_repeated_goaway_is_no_news(pair: QUICPair) -> None:
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.client.submit_headers(3, request(), end_stream=True)
    pair.pump()
    drain(pair.server)
    send_on_control_stream(pair.server, encode_goaway(8) + encode_goaway(8))
    pair.pump()
    assert drain(pair.client) == [GoawayReceived(3, ErrorCode.H3_NO_ERROR)]
    send_on_control_stream(pair.server, encode_goaway(4))
    pair.pump()
    events = drain(pair.client)
    assert events[0] == GoawayReceived(1, ErrorCode.H3_NO_ERROR, (3,))


def test_server_closes_when_the_client_push_id_increases(pair: QUICPair) -> None:
    send_on_control_stream(pair.client, encode_goaway(5) + encode_goaway(3))
    pair.pump()
    assert drain(pair.server) == [GoawayReceived(0, ErrorCode.H3_NO_ERROR)]
    send_on_control_stream(pair.client, encode_goaway(9))
    _, server_events = ends(pair)
    assert isinstance(server_events[-1], ConnectionTerminated)
    assert server_events[-1].error_code == ErrorCode.H3_ID_ERROR


# -- aioquic failing unexpectedly ---------------------------------------------


def boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    "where", ["receive_datagram", "handle_timer", "datagrams_to_send"]
)
def test_aioquic_failure_ends_the_connection(pair: QUICPair, where: str) -> None:
    client = pair.client
    assert isinstance(client, AioquicProtocol) and client._quic is not None
    setattr(client._quic, where, boom)
    client.submit_headers(1, request(), end_stream=True)
    if where == "receive_datagram":
        client.datagram_received(Datagram(b"\x40" * 30, ("198.51.100.7", 443)))
    elif where == "handle_timer":
        timer = client.get_timer()
        assert timer is not None
        client.clock(timer)
    else:
        assert client.datagrams_to_send() == []
    [event] = drain(client)
    assert isinstance(event, ConnectionTerminated)
    assert event.error_code == ErrorCode.H3_INTERNAL_ERROR
    assert "boom" in (event.message or "")
    assert client.has_expired()


def test_h3_failure_ends_the_connection(pair: QUICPair) -> None:
    server = pair.server
    assert isinstance(server, AioquicProtocol) and server._h3 is not None
    server._h3.handle_event = boom  # type: ignore[assignment,method-assign]
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    events = drain(server)
    assert len(events) == 1 and isinstance(events[0], ConnectionTerminated)
    assert events[0].error_code == ErrorCode.H3_INTERNAL_ERROR
    assert not any(isinstance(e, HeadersReceived) for e in events)
