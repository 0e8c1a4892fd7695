"""WebSockets over the real hcore protocols: HTTP/1.1 Upgrade, HTTP/2 and
HTTP/3 extended CONNECT, client session against server session in memory.

The handshake headers come from :mod:`hcore.websocket`'s helpers and go
through the protocols as any request would; after the ``101`` / ``200`` the
stream's data carries the frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from hcore.events import DataReceived, Event, HeadersReceived
from hcore.protocols import HTTPOverTCPProtocol, HTTPProtocol, default_registry
from hcore.protocols.http2 import HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from hcore.websocket import (
    BytesMessage,
    ClientHandshake,
    CloseReceived,
    PerMessageDeflate,
    PingReceived,
    PongReceived,
    SessionState,
    SessionTerminated,
    TextMessage,
    WebSocketAccepted,
    WebSocketEvent,
    WebSocketRejected,
    WebSocketRequest,
    WebSocketRequestRefused,
    WebSocketSession,
    is_websocket_request,
    parse_request,
)
from tests.hcore.pairs import TCPPair
from tests.hcore.quic_pairs import QUICPair, TLSFiles, make_tls_files


class Link(Protocol):
    """A client and a server protocol joined in memory."""

    @property
    def client(self) -> HTTPProtocol: ...

    @property
    def server(self) -> HTTPProtocol: ...

    def pump(self) -> object: ...


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("tls")))


def _http1() -> Link:
    return TCPPair(
        default_registry.tcp_client_factory("1.1")(),
        default_registry.tcp_server_factory("1.1")(),
    )


def _http2() -> Link:
    # RFC 8441 §3: the server must advertise SETTINGS_ENABLE_CONNECT_PROTOCOL.
    return TCPPair(
        default_registry.tcp_client_factory("2")(),
        HTTP2ServerFactory(enable_connect_protocol=True)(),
    )


@pytest.fixture(params=["1.1", "2", "3"])
def link(request: pytest.FixtureRequest, tls: TLSFiles) -> Link:
    made: Link
    if request.param == "1.1":
        made = _http1()
    elif request.param == "2":
        made = _http2()
    else:
        made = QUICPair(
            HTTP3ClientFactory(),
            HTTP3ServerFactory(),
            client_tls=tls.client(),
            server_tls=tls.server(),
        )
    made.pump()  # prefaces, settings, the QUIC handshake
    return made


def _take(protocol: HTTPProtocol) -> list[Event]:
    events: list[Event] = []
    for _ in range(10_000):
        event = protocol.next_event()
        if event is None:
            return events
        events.append(event)
    raise AssertionError("too many events")


class Ends:
    """Both sessions of one WebSocket and the stream they ride on."""

    def __init__(
        self,
        link: Link,
        client_stream: int,
        server_stream: int,
        client: WebSocketSession,
        server: WebSocketSession,
    ) -> None:
        self.link = link
        self.client_stream = client_stream
        self.server_stream = server_stream
        self.client = client
        self.server = server

    def flush(self) -> tuple[list[WebSocketEvent], list[WebSocketEvent]]:
        """Move frames both ways until quiet; return (client, server) events."""
        client_events: list[WebSocketEvent] = []
        server_events: list[WebSocketEvent] = []
        for _ in range(100):
            moved = False
            for session, protocol, sid in (
                (self.client, self.link.client, self.client_stream),
                (self.server, self.link.server, self.server_stream),
            ):
                out = session.data_to_send()
                if out:
                    protocol.submit_data(sid, out)
                    moved = True
            self.link.pump()
            for session, protocol, sid, sink in (
                (self.client, self.link.client, self.client_stream, client_events),
                (self.server, self.link.server, self.server_stream, server_events),
            ):
                for event in _take(protocol):
                    if isinstance(event, DataReceived) and event.stream_id == sid:
                        session.receive_data(event.data)
                        if event.end_stream:
                            session.receive_eof()
                        moved = True
                sink.extend(session.events())
            if not moved:
                return client_events, server_events
        raise AssertionError("still busy")


def open_websocket(
    link: Link,
    *,
    subprotocols: tuple[str, ...] = (),
    offer: tuple[PerMessageDeflate, ...] = (),
    choose: str | None = None,
    agree: tuple[PerMessageDeflate, ...] = (),
) -> tuple[Ends, WebSocketAccepted, WebSocketAccepted]:
    handshake = ClientHandshake(
        link.client.http_version,
        scheme="wss",
        authority="example.test",
        path="/chat?room=1",
        subprotocols=subprotocols,
        extensions=offer,
        headers=[(b"origin", b"https://example.test")],
    )
    sid = link.client.get_available_stream_id()
    link.client.submit_headers(sid, handshake.request_headers)
    link.pump()
    [head] = [e for e in _take(link.server) if isinstance(e, HeadersReceived)]
    assert not head.end_stream
    assert is_websocket_request(head.headers)
    request = parse_request(head.headers)
    assert isinstance(request, WebSocketRequest), request
    assert request.extended_connect == (link.client.http_version != "1.1")
    assert request.path == b"/chat?room=1"
    assert request.authority == b"example.test"
    assert request.subprotocols == subprotocols
    server_side = request.accept(
        subprotocol=choose, extensions=agree, headers=[(b"x-server", b"hcore")]
    )
    link.server.submit_headers(head.stream_id, server_side.headers)
    link.pump()
    [response] = [e for e in _take(link.client) if isinstance(e, HeadersReceived)]
    assert response.stream_id == sid
    client_side = handshake.receive_response(response.headers)
    assert isinstance(client_side, WebSocketAccepted), client_side
    assert (b"x-server", b"hcore") in client_side.headers
    ends = Ends(
        link,
        sid,
        head.stream_id,
        client_side.session(fragment_size=4096),
        server_side.session(),
    )
    return ends, client_side, server_side


def _state(session: WebSocketSession) -> SessionState:
    return session.state


def test_messages_both_ways(link: Link) -> None:
    ends, client_side, server_side = open_websocket(
        link, subprotocols=("chat", "superchat"), choose="superchat"
    )
    assert client_side.subprotocol == server_side.subprotocol == "superchat"
    assert client_side.extensions == server_side.extensions == ()
    ends.client.send_text("hello ✓")
    ends.client.send_bytes(b"\x00\xff" * 10_000)  # fragmented: 4096-byte frames
    ends.server.send_text("")
    at_client, at_server = ends.flush()
    assert at_server == [TextMessage("hello ✓"), BytesMessage(b"\x00\xff" * 10_000)]
    assert at_client == [TextMessage("")]
    ends.server.send_bytes(bytes(range(256)) * 1000)
    at_client, _ = ends.flush()
    assert at_client == [BytesMessage(bytes(range(256)) * 1000)]


def test_ping_pong_and_close_handshake(link: Link) -> None:
    ends, _, _ = open_websocket(link)
    ends.client.send_ping(b"are you there")
    client_events, server_events = ends.flush()
    assert server_events == [PingReceived(b"are you there")]
    assert client_events == [PongReceived(b"are you there")]
    ends.server.send_close(4001, "see you")
    assert _state(ends.server) is SessionState.LOCAL_CLOSING
    client_events, server_events = ends.flush()
    assert client_events == [CloseReceived(4001, "see you")]
    assert server_events == [CloseReceived(4001, "")]
    assert _state(ends.client) is _state(ends.server) is SessionState.CLOSED
    # Then the stream ends both ways; the protocols report it as usual.
    link.server.submit_data(ends.server_stream, b"", end_stream=True)
    link.client.submit_data(ends.client_stream, b"", end_stream=True)
    ends.flush()


@pytest.mark.parametrize(
    ("offer", "agree", "expected"),
    [
        (PerMessageDeflate(), PerMessageDeflate(), PerMessageDeflate()),
        (
            PerMessageDeflate(client_max_window_bits=12),
            PerMessageDeflate(
                server_no_context_takeover=True, server_max_window_bits=10
            ),
            PerMessageDeflate(
                server_no_context_takeover=True,
                client_max_window_bits=12,
                server_max_window_bits=10,
            ),
        ),
    ],
)
def test_permessage_deflate(
    link: Link,
    offer: PerMessageDeflate,
    agree: PerMessageDeflate,
    expected: PerMessageDeflate,
) -> None:
    ends, client_side, server_side = open_websocket(
        link, offer=(offer,), agree=(agree,)
    )
    assert client_side.extensions == server_side.extensions == (expected,)
    text = "compress me, " * 5000
    for _ in range(3):  # context takeover (or not) across messages
        ends.client.send_text(text)
        ends.server.send_bytes(text.encode())
    client_events, server_events = ends.flush()
    assert server_events == [TextMessage(text)] * 3
    assert client_events == [BytesMessage(text.encode())] * 3
    if isinstance(link, TCPPair):  # compressed: far less than 6 x 65 kB moved
        wire = sum(len(data) for _, data in link.wire)
        assert wire < 60_000


def test_rejection_goes_back_as_a_response(link: Link) -> None:
    handshake = ClientHandshake(
        link.client.http_version, authority="example.test", path="/private"
    )
    sid = link.client.get_available_stream_id()
    link.client.submit_headers(sid, handshake.request_headers)
    link.pump()
    [head] = [e for e in _take(link.server) if isinstance(e, HeadersReceived)]
    request = parse_request(head.headers)
    assert isinstance(request, WebSocketRequest)
    link.server.submit_headers(
        head.stream_id, request.reject(403, [(b"content-length", b"9")])
    )
    link.server.submit_data(head.stream_id, b"forbidden", end_stream=True)
    link.pump()
    events = _take(link.client)
    [response] = [e for e in events if isinstance(e, HeadersReceived)]
    outcome = handshake.receive_response(response.headers)
    assert isinstance(outcome, WebSocketRejected)
    assert outcome.status == 403
    body = b"".join(e.data for e in events if isinstance(e, DataReceived))
    assert body == b"forbidden"


def test_bad_version_is_refused_through_the_protocol(link: Link) -> None:
    handshake = ClientHandshake(link.client.http_version, authority="example.test")
    block = [
        (n, b"8" if n == b"sec-websocket-version" else v)
        for n, v in handshake.request_headers
    ]
    sid = link.client.get_available_stream_id()
    link.client.submit_headers(sid, block, end_stream=True)
    link.pump()
    [head] = [e for e in _take(link.server) if isinstance(e, HeadersReceived)]
    refused = parse_request(head.headers)
    assert isinstance(refused, WebSocketRequestRefused)
    link.server.submit_headers(head.stream_id, refused.headers, end_stream=True)
    link.pump()
    [response] = [e for e in _take(link.client) if isinstance(e, HeadersReceived)]
    outcome = handshake.receive_response(response.headers)
    assert isinstance(outcome, WebSocketRejected)
    assert outcome.status == refused.status
    assert (b"sec-websocket-version", b"13") in response.headers


def test_several_websockets_share_one_multiplexed_connection() -> None:
    link = _http2()
    link.pump()
    sockets = [open_websocket(link)[0] for _ in range(3)]
    for n, ends in enumerate(sockets):
        ends.client.send_text(f"socket {n}")
    for n, ends in enumerate(sockets):
        _, received = ends.flush()
        assert received == [TextMessage(f"socket {n}")]


def test_stream_end_without_close_is_abnormal(link: Link) -> None:
    ends, _, _ = open_websocket(link)
    link.client.submit_data(ends.client_stream, b"", end_stream=True)
    if link.client.http_version == "1.1":
        # An HTTP/1.1 tunnel ends with the TCP half-close the link shows so.
        assert isinstance(link.server, HTTPOverTCPProtocol)
        link.server.eof_received()
    _, server_events = ends.flush()
    assert server_events == [
        SessionTerminated(1006, "the stream ended before the closing handshake")
    ]


def _links() -> Iterator[tuple[str, Callable[[], Link]]]:
    yield "1.1", _http1
    yield "2", _http2


@pytest.mark.parametrize(("version", "make"), list(_links()))
def test_bytes_cut_anywhere_by_the_link(version: str, make: Callable[[], Link]) -> None:
    link = make()
    assert isinstance(link, TCPPair)
    link.pump()
    ends, _, _ = open_websocket(
        link, offer=(PerMessageDeflate(),), agree=(PerMessageDeflate(),)
    )
    link.split = lambda data: [data[i : i + 3] for i in range(0, len(data), 3)]
    ends.client.send_text("ü" * 1000)
    ends.client.send_ping(b"x")
    ends.server.send_bytes(b"y" * 5000)
    client_events, server_events = ends.flush()
    assert server_events == [TextMessage("ü" * 1000), PingReceived(b"x")]
    assert client_events == [BytesMessage(b"y" * 5000), PongReceived(b"x")]
