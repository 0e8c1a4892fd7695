"""HTTP/2 flow control: buffering beyond windows, credit on take, bounded memory."""

from __future__ import annotations

import tracemalloc

from hyperframe.frame import DataFrame, SettingsFrame

from hcore.events import (
    DataReceived,
    Event,
    HeadersReceived,
    SendBufferDrained,
    TrailersReceived,
)
from hcore.protocols import HTTPOverTCPProtocol
from hcore.protocols.http2 import H2ClientProtocol, H2ServerProtocol
from tests.hcore.http2_helpers import RawServer, h2_pair, parse_frames, request
from tests.hcore.pairs import TCPPair, drain

WINDOW = 65_535
MIB = 2**20
CHUNK = bytes(range(256)) * (MIB // 256)
TOTAL = 64 * MIB
OK = [(b":status", b"200")]


def _stream(
    pair: TCPPair,
    sender: HTTPOverTCPProtocol,
    receiver: HTTPOverTCPProtocol,
    stream_id: int,
) -> tuple[int, int]:
    """Send TOTAL bytes in 1 MiB submits, taking them as they come.

    Checks on every round that the sender holds at most one submit, that
    the receiver never has more than a window of untaken data, and that no
    write is larger than a window (plus frame headers).

    :return: the number of SendBufferDrained events, and the largest write.
    """
    sent = received = drained = 0
    for _ in range(20_000):
        if sent < TOTAL and sender.pending_data_size(stream_id) == 0:
            sent += len(CHUNK)
            sender.submit_data(stream_id, CHUNK, end_stream=sent == TOTAL)
        assert sender.pending_data_size(stream_id) <= len(CHUNK)
        pair.wire.clear()
        pair.pump()
        untaken = 0
        for event in drain(receiver):
            assert isinstance(event, DataReceived)
            untaken += len(event.data)
            assert event.end_stream == (received + untaken == TOTAL)
        assert untaken <= WINDOW
        received += untaken
        for event in drain(sender):
            assert event == SendBufferDrained(stream_id)
            drained += 1
        if received == TOTAL:
            return drained, max(len(data) for _, data in pair.wire)
    raise AssertionError("transfer did not finish")


def test_64_mib_request_body_through_default_windows() -> None:
    pair = h2_pair()
    pair.client.submit_headers(1, request(b"/upload", b"POST"))
    pair.pump()
    assert pair.server_events() == [HeadersReceived(1, request(b"/upload", b"POST"))]
    tracemalloc.start()
    try:
        drained, largest_write = _stream(pair, pair.client, pair.server, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert drained == 64
    assert largest_write <= WINDOW + 4 * 9 + 64
    # One 1 MiB submit is shared, not copied; what is allocated on top is a
    # window's worth of frames in flight and their copies.
    assert peak < 2 * MIB


def test_64_mib_response_body_through_default_windows() -> None:
    pair = h2_pair()
    pair.client.submit_headers(1, request(b"/download"), end_stream=True)
    pair.pump()
    pair.server_events()
    pair.server.submit_headers(1, OK)
    pair.pump()
    assert pair.client_events() == [HeadersReceived(1, OK)]
    drained, largest_write = _stream(pair, pair.server, pair.client, 1)
    assert drained == 64
    assert largest_write <= WINDOW + 4 * 9 + 64
    assert pair.server.pending_data_size(1) == 0
    assert pair.client.is_available()


def test_data_waits_for_credit_and_drains_once() -> None:
    pair = h2_pair()
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"/", b"POST"))
    client.submit_data(1, b"a" * 100_000)
    client.submit_data(1, b"b" * 50_000)
    client.submit_data(1, b"", end_stream=True)
    assert client.pending_data_size(1) == 150_000 - WINDOW
    pair.pump()
    # The server has not taken anything, so no credit went back.
    assert client.pending_data_size(1) == 150_000 - WINDOW
    assert drain(client) == []
    body = b""
    ended = False
    for _ in range(20):
        for event in drain(server):
            if isinstance(event, DataReceived):
                body += event.data
                ended = event.end_stream
        pair.pump()
    assert ended
    assert body == b"a" * 100_000 + b"b" * 50_000
    assert client.pending_data_size(1) == 0
    assert drain(client) == [SendBufferDrained(1)]


def test_data_within_the_window_goes_at_once_without_drain_event() -> None:
    pair = h2_pair()
    pair.client.submit_headers(1, request(b"/", b"POST"))
    pair.client.submit_data(1, b"x" * 40_000, end_stream=True)
    assert pair.client.pending_data_size(1) == 0
    pair.wire.clear()
    pair.pump()
    assert drain(pair.client) == []
    assert pair.wire[0][0] == "c>s"
    frames = [f for f in parse_frames(pair.wire[0][1]) if isinstance(f, DataFrame)]
    # RFC 9113 §4.2: no frame above the peer's SETTINGS_MAX_FRAME_SIZE.
    assert [len(f.data) for f in frames] == [16_384, 16_384, 40_000 - 2 * 16_384]
    assert "END_STREAM" in frames[-1].flags


def test_larger_peer_window_is_used() -> None:
    pair = h2_pair(server=H2ServerProtocol(initial_window_size=200_000))
    pair.client.submit_headers(1, request(b"/", b"POST"))
    pair.client.submit_data(1, b"x" * 300_000)
    assert pair.client.pending_data_size(1) == 100_000


def test_larger_peer_frame_size_is_used() -> None:
    client = H2ClientProtocol()
    raw = RawServer(client)
    raw.conn.update_settings({SettingsFrame.MAX_FRAME_SIZE: 2**20})
    raw.pump()
    client.submit_headers(1, request(b"/", b"POST"))
    client.submit_data(1, b"x" * 50_000, end_stream=True)
    frames = parse_frames(client.bytes_to_send())
    assert [len(f.data) for f in frames if isinstance(f, DataFrame)] == [50_000]


def test_trailers_wait_behind_buffered_data() -> None:
    pair = h2_pair()
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"/", b"POST"))
    client.submit_data(1, b"d" * 100_000)
    client.submit_headers(1, [(b"x-done", b"1")], end_stream=True)
    events: list[Event] = []
    for _ in range(20):
        pair.pump()
        events += drain(server)
    assert isinstance(events[-1], TrailersReceived)
    assert events[-1] == TrailersReceived(1, [(b"x-done", b"1")])
    assert sum(len(e.data) for e in events if isinstance(e, DataReceived)) == 100_000
    assert drain(client) == [SendBufferDrained(1)]


def test_small_submits_are_coalesced_when_credit_returns() -> None:
    pair = h2_pair()
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"/", b"POST"))
    client.submit_data(1, b"x" * (WINDOW - 10))
    for _ in range(100):
        client.submit_data(1, b"0123456789")
    client.submit_data(1, b"", end_stream=True)
    assert client.pending_data_size(1) == 990
    pair.pump()
    drain(server)
    pair.wire.clear()
    pair.pump()
    sent = [
        f
        for _, data in pair.wire
        for f in parse_frames(data)
        if isinstance(f, DataFrame)
    ]
    assert [len(f.data) for f in sent] == [990]
    assert "END_STREAM" in sent[0].flags
    assert drain(server) == [DataReceived(1, b"0123456789" * 99, end_stream=True)]


def test_streams_share_connection_credit_in_turn() -> None:
    server = H2ServerProtocol(initial_window_size=MIB, connection_window_size=WINDOW)
    pair = h2_pair(server=server)
    client = pair.client
    for sid in (1, 3):
        client.submit_headers(sid, request(b"/", b"POST"))
        client.submit_data(sid, bytes([sid]) * 200_000)
    # The first stream took the whole connection window.
    assert client.pending_data_size(1) == 200_000 - WINDOW
    assert client.pending_data_size(3) == 200_000
    pair.pump()
    first = {1: 0, 3: 0}
    for event in drain(server):
        if isinstance(event, DataReceived):
            first[event.stream_id] += len(event.data)
    assert first == {1: WINDOW, 3: 0}
    pair.pump()
    second = {1: 0, 3: 0}
    for event in drain(server):
        if isinstance(event, DataReceived):
            second[event.stream_id] += len(event.data)
    # Credit returned for the first window is shared frame by frame.
    assert second[1] > 0
    assert second[3] > 0
    assert abs(second[1] - second[3]) <= 16_384


def test_received_data_is_credited_only_when_taken() -> None:
    pair = h2_pair()
    pair.client.submit_headers(1, request(b"/", b"POST"))
    pair.client.submit_data(1, b"q" * 200_000)
    pair.pump()
    pair.pump()
    # Nothing taken: the client is stuck at the stream window.
    assert pair.client.pending_data_size(1) == 200_000 - WINDOW
    first = pair.server.next_event()
    assert isinstance(first, HeadersReceived)
    taken = 0
    while taken < WINDOW // 2:
        event = pair.server.next_event()
        assert isinstance(event, DataReceived)
        taken += len(event.data)
    pair.pump()
    assert pair.client.pending_data_size(1) < 200_000 - WINDOW
