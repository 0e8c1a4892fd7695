"""HTTP/3 flow control: bounded buffers both ways, big bodies, backpressure."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from hcore import Headers
from hcore.events import DataReceived, Event, HeadersReceived, SendBufferDrained
from hcore.protocols.http3 import (
    AioquicProtocol,
    HTTP3ClientFactory,
    HTTP3ServerFactory,
)
from hcore.protocols.http3._quic import h3_buffered
from tests.hcore.quic_pairs import QUICPair, TLSFiles, drain, make_tls_files

MIB = 1 << 20


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("tls")))


def request() -> Headers:
    return [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b":path", b"/upload"),
    ]


def received(events: list[Event]) -> int:
    return sum(len(e.data) for e in events if isinstance(e, DataReceived))


@pytest.mark.slow
def test_64_mib_each_way_in_bounded_memory(tls: TLSFiles) -> None:
    """A 64 MiB upload echoed back as it arrives, with every buffer bounded.

    The writers follow the documented discipline (submit 1 MiB, then wait for
    SendBufferDrained), the readers take every event as it comes.  Memory is
    bounded by the windows, not by the 128 MiB that cross the network.
    """
    total = 64 * MIB
    chunk = bytes(MIB)
    options = {"max_datagram_size": 16_384}
    pair = QUICPair(
        HTTP3ClientFactory(**options),  # type: ignore[arg-type]
        HTTP3ServerFactory(**options),  # type: ignore[arg-type]
        client_tls=tls.client(),
        server_tls=tls.server(),
        delay=0.002,
    )
    client, server = pair.client, pair.server
    pair.pump()
    client.submit_headers(1, request())
    state = {"uploaded": 0, "upload_seen": 0, "echoed": 0, "download_seen": 0}
    peaks = {"client_pending": 0, "server_pending": 0}
    sender_ready = {"client": True, "server": False}

    def step() -> bool:
        if sender_ready["client"] and state["uploaded"] < total:
            state["uploaded"] += len(chunk)
            client.submit_data(1, chunk, end_stream=state["uploaded"] == total)
            sender_ready["client"] = client.pending_data_size(1) == 0
        for event in drain(server):
            if isinstance(event, HeadersReceived):
                server.submit_headers(1, [(b":status", b"200")])
                sender_ready["server"] = True
            elif isinstance(event, DataReceived):
                state["upload_seen"] += len(event.data)
            elif isinstance(event, SendBufferDrained):
                sender_ready["server"] = True
        # Echo what arrived, 1 MiB at a time, when the window allows.
        backlog = state["upload_seen"] - state["echoed"]
        if (
            sender_ready["server"]
            and state["echoed"] < total
            and (backlog >= MIB or state["upload_seen"] == total)
        ):
            size = min(MIB, backlog)
            state["echoed"] += size
            server.submit_data(1, bytes(size), end_stream=state["echoed"] == total)
            sender_ready["server"] = server.pending_data_size(1) == 0
        for event in drain(client):
            if isinstance(event, DataReceived):
                state["download_seen"] += len(event.data)
            elif isinstance(event, SendBufferDrained):
                sender_ready["client"] = True
        peaks["client_pending"] = max(
            peaks["client_pending"], client.pending_data_size(1)
        )
        peaks["server_pending"] = max(
            peaks["server_pending"], server.pending_data_size(1)
        )
        return state["download_seen"] == total

    tracemalloc.start()
    try:
        pair.run_until(step, max_time=600, max_steps=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert state["upload_seen"] == total
    assert peaks["client_pending"] <= MIB
    assert peaks["server_pending"] <= MIB
    # Both directions together moved 128 MiB; what was held at any time is a
    # few windows and send buffers.
    assert peak < 16 * MIB, peak


def test_reader_that_stops_taking_events_stops_the_writer(tls: TLSFiles) -> None:
    window = 256 * 1024
    pair = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(stream_receive_window=window),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    client, server = pair.client, pair.server
    pair.pump()
    body = bytes(8 * MIB)
    client.submit_headers(1, request())
    client.submit_data(1, body, end_stream=True)
    total = 0
    rounds = 0
    while total < len(body):
        rounds += 1
        assert rounds < 100
        pair.pump()
        # The server application took nothing while the network ran: what it
        # holds is bounded by its window, and the client holds the rest.
        held = received(events := drain(server))
        assert held <= window, held
        total += held
        if total < len(body):
            assert client.pending_data_size(1) > 0
        assert not any(isinstance(e, HeadersReceived) for e in events[1:])
    assert total == len(body)
    assert rounds >= len(body) // window
    assert SendBufferDrained(1) in drain(client)


def test_send_buffer_bounds_what_aioquic_holds(tls: TLSFiles) -> None:
    # The server grants a huge window; the client still hands aioquic no more
    # than its send buffer, and keeps the rest itself.
    pair = QUICPair(
        HTTP3ClientFactory(stream_send_buffer=MIB, max_datagram_size=16_384),
        HTTP3ServerFactory(stream_receive_window=64 * MIB, max_datagram_size=16_384),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    pair.pump()
    client = pair.client
    client.submit_headers(1, request())
    client.submit_data(1, bytes(16 * MIB), end_stream=True)
    assert 15 * MIB <= client.pending_data_size(1) < 16 * MIB
    progress = {"seen": 0, "drained": False}

    def done() -> bool:
        progress["seen"] += received(drain(pair.server))
        progress["drained"] |= SendBufferDrained(1) in drain(client)
        return progress["seen"] == 16 * MIB and bool(progress["drained"])

    pair.run_until(done, max_time=60)


def test_send_buffer_drained_only_after_data_was_held(tls: TLSFiles) -> None:
    pair = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    pair.pump()
    client = pair.client
    client.submit_headers(1, request())
    client.submit_data(1, b"small")
    assert client.pending_data_size(1) == 0
    client.submit_data(1, bytes(3 * MIB))
    assert client.pending_data_size(1) > 0
    client.submit_data(1, b"", end_stream=True)
    total = 0
    for _ in range(100):
        pair.pump()
        total += received(drain(pair.server))
        if total == 3 * MIB + 5:
            break
    assert total == 3 * MIB + 5
    assert drain(client).count(SendBufferDrained(1)) == 1


def test_oversized_header_block_is_held_to_the_window(tls: TLSFiles) -> None:
    # aioquic buffers a HEADERS frame until it is whole; the credit it gets
    # counts that buffer, so a huge header block stalls at the window.
    window = 64 * 1024
    pair = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(stream_receive_window=window),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    client, server = pair.client, pair.server
    pair.pump()
    big = [(f"x-big-{n}".encode(), b"v" * 60_000) for n in range(30)]
    client.submit_headers(1, [*request(), *big])
    pair.pump()
    assert drain(server) == []
    assert isinstance(server, AioquicProtocol)
    assert 0 < h3_buffered(server._h3, 0) <= window
    # The client gives up; the connection goes on.
    client.submit_stream_reset(1, 0x10C)
    client.submit_headers(3, request(), end_stream=True)
    pair.pump()
    assert drain(server) == [HeadersReceived(3, tuple(request()), end_stream=True)]
    assert h3_buffered(server._h3, 0) == 0
