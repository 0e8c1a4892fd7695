"""A resumed HTTP/3 client's 0-RTT request survives the server's Retry.

A client with a session ticket sends its first request as 0-RTT data, in
the same flight as its Initial.  A server validating addresses with Retry
(RFC 9000 §8.1.2) discards that flight, so the client must send the data
again after the Retry (RFC 9000 §17.2.5.3).  aioquic starts the handshake
over with new packet spaces and forgets what it had sent; hcore's QUIC
connection declares those packets lost, so the request goes out again and
is answered.  (Before that fix the request hung until the idle timeout.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hcore import Headers
from hcore.events import DataReceived, Event, HeadersReceived
from hcore.protocols.http3 import (
    AioquicProtocol,
    HTTP3ClientFactory,
    HTTP3ServerFactory,
)
from tests.hcore.quic_pairs import QUICPair, TLSFiles, drain, make_tls_files

KEY = b"r" * 32


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("tls")))


def request(path: bytes) -> Headers:
    return [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b":path", path),
    ]


def through_retry(pair: QUICPair, factory: HTTP3ServerFactory, tls: TLSFiles) -> None:
    """Run until the first server protocol sent its Retry; then do what a
    listener does: a new protocol takes the Initial that carries the token."""
    first = pair.server
    for _ in range(100):
        pair.collect()
        if first.has_expired():
            pair.server = factory(tls_config=tls.server())
            pair.server.clock(pair.now)
            return
        when = pair.next_time()
        assert when is not None
        pair.advance(when)
    raise AssertionError("no Retry")


def serve_one(pair: QUICPair, sid: int, path: bytes) -> list[Event]:
    """Answer the request on ``sid`` once it arrives; return the client's events."""
    received: list[Event] = []

    def arrived() -> bool:
        received.extend(drain(pair.server))
        return any(isinstance(e, HeadersReceived) for e in received)

    pair.run_until(arrived, max_time=5)
    assert received[-1] == HeadersReceived(sid, tuple(request(path)), True)
    pair.server.submit_headers(sid, [(b":status", b"200")])
    pair.server.submit_data(sid, b"answer " + path, end_stream=True)
    pair.pump()
    return drain(pair.client)


def test_early_request_is_sent_again_after_a_retry(tls: TLSFiles) -> None:
    client_factory = HTTP3ClientFactory()
    server_factory = HTTP3ServerFactory(retry_key=KEY)

    first = QUICPair(
        client_factory,
        server_factory,
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    through_retry(first, server_factory, tls)
    sid = first.client.get_available_stream_id()
    first.client.submit_headers(sid, request(b"/first"), end_stream=True)
    events = serve_one(first, sid, b"/first")
    assert events[-1] == DataReceived(sid, b"answer /first", end_stream=True)
    assert "example.test" in client_factory.session_ticket_store

    second = QUICPair(
        client_factory,
        server_factory,
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    # Before any datagram left: the request rides in 0-RTT packets, which
    # the Retry throws away.
    sid = second.client.get_available_stream_id()
    second.client.submit_headers(sid, request(b"/early"), end_stream=True)
    through_retry(second, server_factory, tls)
    events = serve_one(second, sid, b"/early")
    assert events[-1] == DataReceived(sid, b"answer /early", end_stream=True)
    client = second.client
    assert isinstance(client, AioquicProtocol)
    assert client.session_resumed
