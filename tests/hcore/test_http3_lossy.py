"""HTTP/3 over a network that loses and reorders datagrams.

Retransmission is driven only by ``get_timer()`` and ``clock()``; the
simulated network drops 10 % of datagrams and delays some past others,
from a seeded generator so that every run is the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hcore import Headers
from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    HeadersReceived,
    SendBufferDrained,
    TrailersReceived,
)
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from tests.hcore.quic_pairs import (
    QUICPair,
    TLSFiles,
    drain,
    make_tls_files,
    stream_of,
)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("tls")))


def request(n: int) -> Headers:
    return [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b":path", f"/{n}".encode()),
    ]


def payload(n: int, size: int) -> bytes:
    return bytes((n + i) % 251 for i in range(size))


class Conversation:
    """A client sending requests and a server echoing them, event by event."""

    def __init__(self, pair: QUICPair, sizes: list[int]) -> None:
        self.pair = pair
        self.sizes = sizes
        self.requests: dict[int, list[Event]] = {}
        self.responses: dict[int, list[Event]] = {}
        for n, size in enumerate(sizes):
            sid = pair.client.get_available_stream_id()
            pair.client.submit_headers(sid, request(n))
            pair.client.submit_data(sid, payload(n, size), end_stream=True)

    def react(self) -> bool:
        """Take what both sides received and answer requests; true when done."""
        for event in drain(self.pair.server):
            assert not isinstance(event, ConnectionTerminated), event
            if isinstance(event, SendBufferDrained):
                continue
            sid: int = stream_of(event)
            self.requests.setdefault(sid, []).append(event)
            if isinstance(event, DataReceived) and event.end_stream:
                echoed = b"".join(
                    e.data for e in self.requests[sid] if isinstance(e, DataReceived)
                )
                self.pair.server.submit_headers(sid, [(b":status", b"200")])
                self.pair.server.submit_data(sid, echoed)
                self.pair.server.submit_headers(
                    sid, [(b"x-done", b"1")], end_stream=True
                )
        for event in drain(self.pair.client):
            assert not isinstance(event, ConnectionTerminated), event
            if isinstance(event, SendBufferDrained):
                continue
            self.responses.setdefault(stream_of(event), []).append(event)
        return len(self.responses) == len(self.sizes) and all(
            isinstance(events[-1], TrailersReceived)
            for events in self.responses.values()
        )

    def check(self) -> None:
        for sid, events in self.responses.items():
            n = (sid - 1) // 2
            assert isinstance(events[0], HeadersReceived)
            data = b"".join(e.data for e in events if isinstance(e, DataReceived))
            assert data == payload(n, self.sizes[n]), sid


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_conversation_survives_loss_and_reordering(tls: TLSFiles, seed: int) -> None:
    pair = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(),
        client_tls=tls.client(),
        server_tls=tls.server(),
        loss=0.10,
        reorder=0.10,
        seed=seed,
    )
    conversation = Conversation(pair, [0, 1, 1000, 50_000, 300_000, 10, 70_000, 5])
    pair.run_until(conversation.react, max_time=120)
    conversation.check()
    assert pair.stats.dropped > 10
    assert pair.stats.reordered > 10


def test_handshake_survives_losing_the_first_flights(tls: TLSFiles) -> None:
    pair = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    conversation = Conversation(pair, [100])
    pair.partitioned = True
    start = pair.now
    pair.run_until(lambda: pair.now - start > 1.5, max_time=5)
    pair.partitioned = False
    pair.run_until(conversation.react, max_time=30)
    conversation.check()
    assert pair.stats.dropped >= 2
