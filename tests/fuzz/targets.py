"""Fuzz targets: feed arbitrary bytes to every parser hcore exposes to a peer.

Each target takes the fuzzer's bytes, plays them at one protocol (in pieces
the bytes themselves choose), answers like a simple application, and checks
the invariants every hcore protocol promises:

* no exception escapes the receive path (``bytes_received``,
  ``eof_received``, ``datagram_received``, ``receive_data``); the only
  documented one is the SSE parser's :class:`~hcore.sse.EventStreamError`;
* what the protocol queues stays bounded by what it was fed;
* after :class:`~hcore.events.ConnectionTerminated` nothing more is
  emitted and ``has_expired()`` is true.

Used by the bounded hypothesis tests (``tests/hcore/test_fuzz_*.py``) and by
the long runner ``tests/fuzz/run.py``.  :data:`SEEDS` holds valid traffic for
each target, for mutation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from tempfile import mkdtemp

from hcore import Datagram, LocalProtocolError
from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    HeadersReceived,
)
from hcore.protocols import HTTPOverQUICProtocol, HTTPOverTCPProtocol
from hcore.protocols.http2 import H2ClientProtocol, H2ServerProtocol
from hcore.protocols.http3 import (
    AioquicProtocol,
    HTTP3ClientFactory,
    HTTP3ServerFactory,
)
from hcore.sse import EventStreamError, EventStreamParser
from hcore.websocket import PerMessageDeflate, SessionState, WebSocketSession

TCPFactory = Callable[[], HTTPOverTCPProtocol]

#: Most bytes a protocol may queue to send per byte it was fed, plus slack
#: for the answers our scripted application gives.
_OUT_FACTOR = 4
_OUT_SLACK = 64 * 1024


def pieces(data: bytes) -> list[bytes]:
    """Cut ``data`` where its own bytes say: byte 0 is a cut length seed."""
    if not data:
        return []
    step = data[0] % 64 + 1
    body = data[1:]
    out = []
    start = 0
    while start < len(body):
        out.append(body[start : start + step])
        start += step
        step = (step * 7 + 3) % 97 + 1
    return out


class _Watch:
    """Checks the event invariants of one protocol as its events are taken."""

    def __init__(self, protocol: HTTPOverTCPProtocol | HTTPOverQUICProtocol) -> None:
        self.protocol = protocol
        self.ended = False
        self.events = 0

    def take(self) -> list[Event]:
        taken: list[Event] = []
        for _ in range(100_000):
            event = self.protocol.next_event()
            if event is None:
                break
            assert not self.ended, f"{event!r} after ConnectionTerminated"
            if isinstance(event, ConnectionTerminated):
                self.ended = True
                assert self.protocol.has_expired()
            taken.append(event)
        else:
            raise AssertionError("events without end")
        self.events += len(taken)
        return taken


def _answer(protocol: HTTPOverTCPProtocol | HTTPOverQUICProtocol, event: Event) -> None:
    """The scripted server application: a small response to each request."""
    if not isinstance(event, HeadersReceived):
        return
    try:
        protocol.submit_headers(
            event.stream_id, [(b":status", b"200"), (b"content-length", b"2")]
        )
        protocol.submit_data(event.stream_id, b"ok", end_stream=True)
    except LocalProtocolError:
        # Documented: answering a stream the peer already reset or that
        # cannot take a response now is caller misuse, refused at once.
        pass


def _serve(
    protocol: HTTPOverTCPProtocol | HTTPOverQUICProtocol, watch: _Watch, server: bool
) -> None:
    """Take events, answering requests, until answers release no more."""
    for _ in range(1000):
        events = watch.take()
        if not events:
            return
        if server:
            for event in events:
                _answer(protocol, event)
    raise AssertionError("answers keep releasing events")


def run_tcp(protocol: HTTPOverTCPProtocol, data: bytes, *, server: bool) -> None:
    """Play fuzz bytes at a TCP protocol and check the invariants."""
    watch = _Watch(protocol)
    fed = 0
    sent = len(protocol.bytes_to_send())
    for piece in pieces(data):
        protocol.bytes_received(piece)
        fed += len(piece)
        _serve(protocol, watch, server)
        sent += len(protocol.bytes_to_send())
        assert sent <= _OUT_FACTOR * fed + _OUT_SLACK, (sent, fed)
        assert protocol.pending_data_size(1) <= 2
    if data and data[0] & 0x80:
        protocol.eof_received()
    else:
        protocol.connection_lost()
    _serve(protocol, watch, server)
    protocol.bytes_to_send()
    protocol.connection_lost()
    watch.take()
    assert watch.ended and protocol.has_expired()
    assert protocol.next_event() is None


def run_h1_server(factory: TCPFactory, data: bytes) -> None:
    run_tcp(factory(), data, server=True)


def run_h1_client(factory: TCPFactory, data: bytes) -> None:
    """A client that sent a POST (so any response framing applies)."""
    client = factory()
    _open_request(client, data)
    run_tcp(client, data, server=False)


def _open_request(client: HTTPOverTCPProtocol, data: bytes) -> None:
    method = (b"GET", b"POST", b"HEAD", b"CONNECT")[data[0] % 4 if data else 0]
    sid = client.get_available_stream_id()
    if method == b"CONNECT":
        block = [(b":method", method), (b":authority", b"example.test:443")]
    else:
        block = [
            (b":method", method),
            (b":scheme", b"http"),
            (b":authority", b"example.test"),
            (b":path", b"/"),
        ]
    client.submit_headers(sid, block, end_stream=method != b"POST")
    if method == b"POST":
        client.submit_data(sid, b"body", end_stream=True)


def run_h2_server(data: bytes) -> None:
    run_tcp(H2ServerProtocol(), data, server=True)


def run_h2_client(data: bytes) -> None:
    client = H2ClientProtocol()
    client.bytes_to_send()
    _open_request(client, data)
    run_tcp(client, data, server=False)


# -- HTTP/3 ----------------------------------------------------------------------


@cache
def _tls_files() -> object:
    # Imported here: trustme is a test dependency only the HTTP/3 targets use.
    from tests.hcore.quic_pairs import make_tls_files

    return make_tls_files(Path(mkdtemp(prefix="hcore-fuzz-")))


def _h3_pair() -> object:
    from tests.hcore.quic_pairs import QUICPair, TLSFiles

    tls = _tls_files()
    assert isinstance(tls, TLSFiles)
    pair = QUICPair(
        HTTP3ClientFactory(),
        HTTP3ServerFactory(),
        client_tls=tls.client(),
        server_tls=tls.server(),
    )
    pair.pump()
    return pair


def run_h3(data: bytes, *, server: bool) -> None:
    """Raw HTTP/3 stream bytes from a peer, after a real handshake.

    Server role: the fuzz bytes are a request stream's payload (frames,
    QPACK) and, on a second stream, the client's QPACK encoder stream.
    Client role: they are the response stream's payload.  Both roles also
    get a few undecryptable datagrams.
    """
    from tests.hcore.quic_pairs import CLIENT_ADDRESS, SERVER_ADDRESS, QUICPair

    pair = _h3_pair()
    assert isinstance(pair, QUICPair)
    target = pair.server if server else pair.client
    peer = pair.client if server else pair.server
    assert isinstance(peer, AioquicProtocol) and peer._quic is not None
    watch = _Watch(target)
    quic = peer._quic
    if server:
        stream_id = quic.get_next_available_stream_id()
    else:
        stream_id = 0
        pair.client.submit_headers(
            pair.client.get_available_stream_id(),
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"example.test"),
                (b":path", b"/"),
            ],
            end_stream=True,
        )
        pair.pump()
        assert [type(e) for e in _Watch(pair.server).take()] == [HeadersReceived]
    parts = pieces(data)
    for index, piece in enumerate(parts):
        end = index == len(parts) - 1 and bool(data[0] & 0x40)
        quic.send_stream_data(stream_id, piece, end_stream=end)
        if index % 5 == 4:
            # A datagram that cannot be decrypted, from the peer's address.
            source = CLIENT_ADDRESS if server else SERVER_ADDRESS
            target.datagram_received(Datagram(b"\x40" + piece, source))
        pair.pump(max_steps=20_000)
        _serve(target, watch, server)
        if watch.ended:
            break
    pair.partitioned = True
    target.connection_lost()
    watch.take()
    assert watch.ended and target.has_expired()
    assert target.next_event() is None
    assert target.datagrams_to_send() == []


# -- WebSocket and SSE -----------------------------------------------------------------


def run_websocket(data: bytes) -> None:
    """Frames from a peer (masked for a server, deflate negotiated or not)."""
    flags = data[0] if data else 0
    session = WebSocketSession(
        bool(flags & 1),
        extensions=(PerMessageDeflate(),) if flags & 2 else (),
        max_message_size=64 * 1024,
    )
    for piece in pieces(data):
        session.receive_data(piece)
        for event in session.events():
            # Messages (and fragments) never exceed max_message_size.
            assert len(getattr(event, "data", b"") or b"") <= 64 * 1024
        # At most a Pong (125 bytes) per Ping received and one Close.
        assert len(session.data_to_send()) <= 2 * len(piece) + 256
    session.receive_eof()
    list(session.events())
    session.data_to_send()
    assert session.state is SessionState.CLOSED
    assert session.next_event() is None


def run_sse(data: bytes) -> None:
    """An event stream cut anywhere; over-limit lines and events raise
    the documented :class:`EventStreamError`, after which the parser refuses
    more input."""
    parser = EventStreamParser(max_line_size=4096, max_event_size=16 * 1024)
    total = 0
    try:
        for piece in pieces(data):
            for event in parser.feed(piece):
                total += len(event.data)
                assert len(event.data) <= 16 * 1024
        parser.feed_eof()
    except EventStreamError:
        try:
            parser.feed(b"x")
        except LocalProtocolError:
            return
        raise AssertionError("the parser took input after failing") from None
    assert total <= len(data)


# -- seeds: valid traffic to mutate ---------------------------------------------------


def _h2_conversation() -> tuple[bytes, bytes]:
    from tests.hcore.pairs import TCPPair

    pair = TCPPair(H2ClientProtocol(), H2ServerProtocol())
    pair.pump()
    sid = pair.client.get_available_stream_id()
    pair.client.submit_headers(
        sid,
        [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", b"example.test"),
            (b":path", b"/upload"),
            (b"content-type", b"text/plain"),
        ],
    )
    pair.client.submit_data(sid, b"hello world" * 20, end_stream=True)
    pair.pump()
    for event in pair.server_events():
        if isinstance(event, DataReceived) and event.end_stream:
            pair.server.submit_headers(sid, [(b":status", b"200")])
            pair.server.submit_data(sid, b"done", end_stream=False)
            pair.server.submit_headers(sid, [(b"x-trailer", b"1")], end_stream=True)
    pair.client.submit_close()
    pair.pump()
    to_server = b"".join(data for way, data in pair.wire if way == "c>s")
    to_client = b"".join(data for way, data in pair.wire if way == "s>c")
    return to_server, to_client


def _ws_frame(opcode: int, payload: bytes, mask: bool) -> bytes:
    head = bytes([0x80 | opcode, (0x80 if mask else 0) | len(payload)])
    if not mask:
        return head + payload
    key = b"\x01\x02\x03\x04"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def seeds() -> dict[str, list[bytes]]:
    """Valid inputs per target (each led by its piece-length byte)."""
    h2_requests, h2_responses = _h2_conversation()
    h1_requests = (
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        b"PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n"
    )
    h1_responses = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nbody\r\n0\r\nX: y\r\n\r\n"
    )
    h3_request = (
        # HEADERS with a static-table-only field section, then DATA.
        b"\x01\x05\x00\x00\xd1\xd7\xc1\x00\x05hello"
    )
    h3_response = b"\x01\x03\x00\x00\xd9\x00\x04body"
    ws = (
        _ws_frame(1, b"hi", True)
        + _ws_frame(9, b"p", True)
        + _ws_frame(8, b"\x03\xe8", True)
    )
    ws_client = b"\x00" + b"".join(
        _ws_frame(op, p, False) for op, p in ((2, b"\x00\x01"), (10, b""), (8, b""))
    )
    sse = (
        b"\xef\xbb\xbfid: 1\nevent: x\ndata: a\ndata: b\r\n\r\n"
        b": c\nretry: 10\n\ndata:z\r"
    )
    return {
        "h1-server": [b"\x05" + h1_requests, b"\x3f" + h1_requests],
        "h1-client": [b"\x01" + h1_responses, b"\x22" + h1_responses],
        "h2-server": [b"\x08" + h2_requests, b"\x3f" + h2_requests],
        "h2-client": [b"\x01" + h2_responses, b"\x3f" + h2_responses],
        "h3-server": [b"\x03" + h3_request, b"\x43" + h3_request],
        "h3-client": [b"\x02" + h3_response, b"\x42" + h3_response],
        "websocket": [b"\x00" + ws, b"\x02" + ws, b"\x01" + ws_client[1:]],
        "sse": [b"\x07" + sse, b"\x00" + sse],
    }


SEEDS_CACHE: dict[str, list[bytes]] = {}


def seed_inputs(target: str) -> Sequence[bytes]:
    """The seeds of one target (computed once)."""
    if not SEEDS_CACHE:
        SEEDS_CACHE.update(seeds())
    return SEEDS_CACHE[target]


def mutate(seed: bytes, edits: Sequence[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, value) edits: flip, insert, delete, or repeat."""
    data = bytearray(seed)
    for kind, position, value in edits:
        if not data:
            data.append(value & 0xFF)
            continue
        at = position % len(data)
        if kind % 4 == 0:
            data[at] ^= value & 0xFF or 1
        elif kind % 4 == 1:
            data[at:at] = bytes([value & 0xFF])
        elif kind % 4 == 2:
            del data[at : at + 1 + value % 8]
        else:
            size = 1 + value % 32
            data[at:at] = data[at : at + size] * (1 + value % 3)
    return bytes(data)
