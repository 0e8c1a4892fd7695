"""A server's graceful close is not held back by a request head that never ends.

RFC 9114 §5.2: requests at or above a server's GOAWAY are not processed.  A
request whose head was still arriving when the GOAWAY went out was never
seen by the application; the server refuses it (H3_REQUEST_REJECTED, §4.1.1)
instead of waiting for a head the client may never finish, so the
connection closes (CONNECTION_CLOSE with H3_NO_ERROR) as soon as the rest is
acknowledged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aioquic.quic.connection import QuicConnection

from hcore import HTTP3_ERROR_CODES as CODES
from hcore.events import ConnectionTerminated, GoawayReceived, HeadersReceived
from hcore.protocols.http3 import (
    AioquicProtocol,
    HTTP3ClientFactory,
    HTTP3ServerFactory,
)
from tests.hcore.quic_pairs import QUICPair, TLSFiles, drain, make_tls_files

# A HEADERS frame (type 1) announcing 100 bytes, of which only 3 come.
UNFINISHED_HEAD = b"\x01\x40\x64" + b"\x00" * 3


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


def _client_quic(pair: QUICPair) -> QuicConnection:
    # The client protocol never sends half a head: its aioquic connection does.
    client = pair.client
    assert isinstance(client, AioquicProtocol)
    quic = client._quic
    assert quic is not None
    return quic


def _over(pair: QUICPair) -> None:
    pair.run_until(
        lambda: pair.client.get_timer() is None and pair.server.get_timer() is None,
        max_time=10,
    )


def test_goaway_refuses_a_head_still_arriving(pair: QUICPair) -> None:
    quic = _client_quic(pair)
    quic.send_stream_data(0, UNFINISHED_HEAD)
    pair.client.clock(pair.now)
    pair.pump()
    assert drain(pair.server) == []  # nothing the application could see
    pair.server.submit_close()
    # Bounded by the simulated time: the close no longer waits for the head.
    _over(pair)
    assert drain(pair.server) == [ConnectionTerminated(CODES.no_error)]
    assert drain(pair.client) == [
        GoawayReceived(0, CODES.no_error),
        ConnectionTerminated(CODES.no_error),
    ]


def test_a_served_request_below_the_goaway_is_not_refused(pair: QUICPair) -> None:
    # Stream 0 (hcore's 1) was accepted; stream 4 (hcore's 3) has half a
    # head when the GOAWAY (identifier 4) goes out.  Only stream 4 is
    # refused: stream 0's response is still sent, then the connection closes.
    client, server = pair.client, pair.server
    client.submit_headers(
        1,
        (
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"example.test"),
            (b":path", b"/"),
        ),
        end_stream=True,
    )
    pair.pump()
    [opened] = drain(server)
    assert isinstance(opened, HeadersReceived)
    _client_quic(pair).send_stream_data(4, UNFINISHED_HEAD)
    client.clock(pair.now)
    pair.pump()
    server.submit_close()
    pair.pump()
    assert drain(server) == []  # the refused head never reached the app
    server.submit_headers(1, ((b":status", b"204"),), end_stream=True)
    _over(pair)
    assert drain(server) == [ConnectionTerminated(CODES.no_error)]
    events = drain(client)
    # The last request processed: hcore's stream 1.
    assert events[0] == GoawayReceived(1, CODES.no_error)
    assert HeadersReceived(1, ((b":status", b"204"),), end_stream=True) in events
    assert events[-1] == ConnectionTerminated(CODES.no_error)
