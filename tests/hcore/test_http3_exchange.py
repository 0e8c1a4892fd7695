"""HTTP/3 request/response exchanges over an in-memory QUIC pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcore import HTTP3_ERROR_CODES, Headers, LocalProtocolError
from hcore.events import (
    DataReceived,
    Event,
    HeadersReceived,
    InformationalResponseReceived,
    SendBufferDrained,
    TrailersReceived,
)
from hcore.protocols import HTTPOverQUICProtocol, default_registry
from hcore.protocols.http3 import (
    AioquicClientProtocol,
    AioquicServerProtocol,
    HTTP3ClientFactory,
    HTTP3ServerFactory,
)
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


def request(
    path: bytes = b"/", method: bytes = b"GET", *extra: tuple[bytes, bytes]
) -> Headers:
    return [
        (b":method", method),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b":path", path),
        *extra,
    ]


def body(events: list[Event], stream_id: int | None = None) -> bytes:
    return b"".join(
        e.data
        for e in events
        if isinstance(e, DataReceived) and stream_id in (None, e.stream_id)
    )


def ended(events: list[Event]) -> bool:
    last = events[-1]
    return isinstance(last, TrailersReceived) or bool(
        getattr(last, "end_stream", False)
    )


def until_ended(pair: QUICPair, protocol: HTTPOverQUICProtocol) -> list[Event]:
    """Run the pair until ``protocol`` saw the end of a stream; its events."""
    events: list[Event] = []

    def done() -> bool:
        events.extend(
            e for e in drain(protocol) if not isinstance(e, SendBufferDrained)
        )
        return bool(events) and ended(events)

    pair.run_until(done)
    return events


def test_properties(pair: QUICPair) -> None:
    for protocol in (pair.client, pair.server):
        assert protocol.http_version == "3"
        assert protocol.multiplexed
        assert protocol.error_codes is HTTP3_ERROR_CODES
        assert not protocol.has_expired()
    assert pair.client.is_available()
    assert not pair.server.is_available()
    with pytest.raises(LocalProtocolError):
        pair.server.get_available_stream_id()


def test_registry_gives_these_factories() -> None:
    assert isinstance(
        default_registry.quic_client_factory("aioquic"), HTTP3ClientFactory
    )
    assert isinstance(
        default_registry.quic_server_factory("aioquic"), HTTP3ServerFactory
    )


def test_get(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    sid = client.get_available_stream_id()
    assert sid == 1
    assert client.get_available_stream_id() == 1  # same until used
    client.submit_headers(sid, request(b"/hello?x=1"), end_stream=True)
    assert client.get_available_stream_id() == 3
    pair.pump()
    [got] = drain(server)
    assert got == HeadersReceived(1, tuple(request(b"/hello?x=1")), end_stream=True)
    server.submit_headers(1, [(b":status", b"200"), (b"content-length", b"13")])
    server.submit_data(1, b"Hello, world!", end_stream=True)
    pair.pump()
    events = drain(client)
    assert events[0] == HeadersReceived(
        1, ((b":status", b"200"), (b"content-length", b"13"))
    )
    assert body(events) == b"Hello, world!"
    assert ended(events)
    assert client.pending_data_size(1) == 0


def test_post_with_1_mib_body(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    payload = bytes(range(256)) * 4096
    sid = client.get_available_stream_id()
    client.submit_headers(sid, request(b"/echo", b"POST"))
    client.submit_data(sid, payload[:1000])
    client.submit_data(sid, payload[1000:], end_stream=True)
    received = until_ended(pair, server)
    assert isinstance(received[0], HeadersReceived)
    assert body(received) == payload
    server.submit_headers(sid, [(b":status", b"200")])
    server.submit_data(sid, body(received), end_stream=True)
    answer = until_ended(pair, client)
    assert body(answer) == payload


def test_100_concurrent_requests(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    sids = []
    for n in range(100):
        sid = client.get_available_stream_id()
        client.submit_headers(sid, request(f"/{n}".encode(), b"POST"))
        client.submit_data(sid, f"body {n}".encode(), end_stream=True)
        sids.append(sid)
    assert sids == list(range(1, 200, 2))
    requests: dict[int, list[Event]] = {}
    for _ in range(200):
        pair.pump()
        for event in drain(server):
            requests.setdefault(stream_of(event), []).append(event)
        if len(requests) == 100 and all(ended(e) for e in requests.values()):
            break
    assert sorted(requests) == sids
    for sid, events in requests.items():
        path = dict(events[0].headers)[b":path"]  # type: ignore[attr-defined]
        n = int(path[1:])
        assert body(events) == f"body {n}".encode()
        server.submit_headers(sid, [(b":status", b"200")])
        server.submit_data(sid, f"answer {n}".encode(), end_stream=True)
    responses: dict[int, list[Event]] = {}
    for _ in range(200):
        pair.pump()
        for event in drain(client):
            responses.setdefault(stream_of(event), []).append(event)
        if len(responses) == 100 and all(ended(e) for e in responses.values()):
            break
    for sid, events in responses.items():
        assert body(events) == f"answer {(sid - 1) // 2}".encode()
    assert not pair.client.has_expired()


def test_trailers_both_ways(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"/t", b"POST", (b"te", b"trailers")))
    client.submit_data(1, b"abc")
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, [(b"x-sum", b"1")])  # must end the stream
    client.submit_headers(1, [(b"x-checksum", b"abc")], end_stream=True)
    pair.pump()
    events = drain(server)
    assert [type(e) for e in events] == [
        HeadersReceived,
        DataReceived,
        TrailersReceived,
    ]
    assert events[-1] == TrailersReceived(1, ((b"x-checksum", b"abc"),))
    server.submit_headers(1, [(b":status", b"200")])
    server.submit_data(1, b"ok")
    server.submit_headers(1, [(b"grpc-status", b"0")], end_stream=True)
    pair.pump()
    events = drain(client)
    assert [type(e) for e in events] == [
        HeadersReceived,
        DataReceived,
        TrailersReceived,
    ]
    assert events[-1] == TrailersReceived(1, ((b"grpc-status", b"0"),))
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"more")


def test_trailers_right_after_headers(pair: QUICPair) -> None:
    pair.client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    drain(pair.server)
    pair.server.submit_headers(1, [(b":status", b"200")])
    pair.server.submit_headers(1, [(b"x-t", b"1")], end_stream=True)
    pair.pump()
    events = drain(pair.client)
    assert events == [
        HeadersReceived(1, ((b":status", b"200"),)),
        TrailersReceived(1, ((b"x-t", b"1"),)),
    ]


def test_informational_responses(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    client.submit_headers(1, request(b"/", b"POST", (b"expect", b"100-continue")))
    pair.pump()
    drain(server)
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, [(b":status", b"100")], end_stream=True)
    with pytest.raises(LocalProtocolError):
        server.submit_data(1, b"too early")
    server.submit_headers(1, [(b":status", b"100")])
    server.submit_headers(1, [(b":status", b"103"), (b"link", b"</a>; rel=preload")])
    pair.pump()
    assert drain(client) == [
        InformationalResponseReceived(1, ((b":status", b"100"),)),
        InformationalResponseReceived(
            1, ((b":status", b"103"), (b"link", b"</a>; rel=preload"))
        ),
    ]
    client.submit_data(1, b"body", end_stream=True)
    server.submit_headers(1, [(b":status", b"204")], end_stream=True)
    pair.pump()
    assert drain(client) == [
        HeadersReceived(1, ((b":status", b"204"),), end_stream=True)
    ]
    assert body(drain(server)) == b"body"


def test_empty_end_of_stream(pair: QUICPair) -> None:
    pair.client.submit_headers(1, request(b"/", b"POST"))
    pair.client.submit_data(1, b"", end_stream=True)
    pair.pump()
    assert drain(pair.server)[-1] == DataReceived(1, b"", end_stream=True)


def test_misuse_raises_at_once(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    with pytest.raises(LocalProtocolError):
        client.submit_headers(3, request())  # not the next stream
    with pytest.raises(LocalProtocolError):
        client.submit_headers(2, request())  # not a client stream id
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, [(b":method", b"GET")])  # no :authority
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, request(b"/", b"GET", (b"connection", b"close")))
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, [("x", "y")])  # type: ignore[list-item]
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, [*request(), (b"x-big", bytes(70_000))])
    with pytest.raises(LocalProtocolError):
        client.submit_data(1, b"x")  # not open
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, [(b":status", b"200")])  # no such request
    with pytest.raises(LocalProtocolError):
        client.submit_stream_reset(1, -1)
    assert client.get_available_stream_id() == 1  # nothing above changed state
    client.submit_headers(1, request(), end_stream=True)
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, [(b"x", b"y")], end_stream=True)
    pair.pump()
    drain(server)
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, [(b":status", b"101")])
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, [(b":status", b"200"), (b":path", b"/")])
    server.submit_headers(1, [(b":status", b"200")])
    with pytest.raises(LocalProtocolError):
        server.submit_headers(1, [(b":status", b"200")], end_stream=True)  # pseudo
    assert client.pending_data_size(2) == 0
    assert client.pending_data_size(99) == 0


def test_submitting_before_the_first_clock(tls: TLSFiles) -> None:
    client = HTTP3ClientFactory()(
        remote_address=("192.0.2.9", 443),
        server_name="example.test",
        tls_config=tls.client(),
    )
    assert isinstance(client, AioquicClientProtocol)
    assert not client.is_available()
    assert client.get_timer() is None
    assert client.datagrams_to_send() == []
    with pytest.raises(LocalProtocolError):
        client.submit_headers(1, request())
    with pytest.raises(LocalProtocolError):
        client.datagram_received(b"x" * 1200)  # type: ignore[arg-type]
    client.submit_close()
    assert client.has_expired()
    assert [type(e).__name__ for e in drain(client)] == ["ConnectionTerminated"]


def test_requests_before_the_handshake_wait_for_it(tls: TLSFiles) -> None:
    made = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    client = made.client
    assert client.is_available()
    client.submit_headers(1, request(b"/", b"POST"))
    client.submit_data(1, b"x" * 50_000, end_stream=True)
    assert client.pending_data_size(1) == 50_000  # no window before the handshake
    made.pump()
    events = drain(made.server)
    assert body(events) == b"x" * 50_000
    assert SendBufferDrained(1) in drain(client)


def test_connection_ids_follow_issue_and_retire(pair: QUICPair) -> None:
    client, server = pair.client, pair.server
    server_ids = set(server.connection_ids)
    # The handshake issued more ids than the first, and dropped the client's
    # original destination id once it was no longer needed.
    assert len(server_ids) > 1
    assert all(len(cid) == 8 for cid in server_ids)
    # The client switches to another of the server's ids and retires the old
    # one; the server issues a replacement.
    assert isinstance(client, AioquicClientProtocol)
    quic = client._quic  # the test reaches into aioquic to migrate ids
    assert quic is not None
    quic.change_connection_id()
    client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    assert set(server.connection_ids) != server_ids
    assert len(server.connection_ids) == len(server_ids)


def test_server_push_is_ignored(pair: QUICPair) -> None:
    # hcore never pushes, but another server might.
    client, server = pair.client, pair.server
    client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    drain(server)
    assert isinstance(server, AioquicServerProtocol) and server._h3 is not None
    h3 = server._h3
    pushed = h3.send_push_promise(0, list(request(b"/style.css")))
    h3.send_headers(pushed, [(b":status", b"200")])
    h3.send_data(pushed, b"body{}", end_stream=True)
    server.submit_headers(1, [(b":status", b"200")], end_stream=True)
    pair.pump()
    assert drain(client) == [
        HeadersReceived(1, ((b":status", b"200"),), end_stream=True)
    ]


def test_trailers_then_a_bare_end_of_stream(pair: QUICPair) -> None:
    # Another server may end the stream after its trailers, in a frame of
    # its own; the trailers already ended the stream.
    client, server = pair.client, pair.server
    client.submit_headers(1, request(), end_stream=True)
    pair.pump()
    drain(server)
    server.submit_headers(1, [(b":status", b"200")])
    assert isinstance(server, AioquicServerProtocol)
    assert server._h3 is not None and server._quic is not None
    server._h3.send_headers(0, [(b"x-t", b"1")])
    pair.pump()
    server._quic.send_stream_data(0, b"", end_stream=True)
    pair.pump()
    assert drain(client) == [
        HeadersReceived(1, ((b":status", b"200"),)),
        TrailersReceived(1, ((b"x-t", b"1"),)),
    ]


@pytest.mark.parametrize(
    "limits",
    [
        {"idle_timeout": 0},
        {"max_datagram_size": 1000},
        {"max_datagram_size": 20_000},
        {"stream_receive_window": 1024},
        {"stream_send_buffer": 1024},
        {"connection_id_length": 4},
        {"supported_versions": []},
    ],
)
def test_factory_limits_are_checked(limits: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        HTTP3ClientFactory(**limits)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HTTP3ServerFactory(**limits)  # type: ignore[arg-type]


def test_server_factory_describes_routing() -> None:
    factory = HTTP3ServerFactory(connection_id_length=12, supported_versions=[1])
    assert factory.quic_connection_id_length == 12
    assert tuple(factory.quic_supported_versions) == (1,)


def test_is_available_follows_the_peer_stream_limit(pair: QUICPair) -> None:
    # aioquic lets a peer open 128 request streams, and more as they finish.
    client, server = pair.client, pair.server
    opened = []
    for _ in range(1000):
        if not client.is_available():
            break
        sid = client.get_available_stream_id()
        client.submit_headers(sid, request(), end_stream=True)
        opened.append(sid)
    assert len(opened) == 128
    pair.pump()
    assert not client.is_available()
    assert len(drain(server)) == 128
    for sid in opened[:10]:
        server.submit_headers(sid, [(b":status", b"204")], end_stream=True)
    pair.pump()
    assert client.is_available()
    sid = client.get_available_stream_id()
    client.submit_headers(sid, request(), end_stream=True)
    pair.pump()
    assert drain(server) == [HeadersReceived(sid, tuple(request()), end_stream=True)]
