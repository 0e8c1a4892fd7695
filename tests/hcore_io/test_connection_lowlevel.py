"""HTTPConnection's low-level API, and event routing driven by a scripted protocol.

The scripted protocol (after httpcore's mock backend) emits prepared events,
one batch per byte it is fed, so routing cases that real peers rarely produce (GOAWAY
refusing streams, unknown events, a flood on the connection queue) are
exercised exactly.  Every test runs on asyncio and Trio.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSAttribute

from hcore import (
    HTTP2_ERROR_CODES,
    ClientTLSConfig,
    Headers,
    HTTPErrorCodes,
    LocalProtocolError,
    ServerTLSConfig,
)
from hcore.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    SendBufferDrained,
    StreamResetSent,
)
from hcore.protocols import HTTPOverTCPProtocol
from hcore.protocols.http2 import HTTP2ClientFactory
from hcore.protocols.http3 import HTTP3ClientFactory
from hcore_io import ConnectionClosed, ReadTimeout
from hcore_io.connections import HTTPConnection, StreamReset
from hcore_io.networking import MemoryNetworking

from .conftest import SocketBackend
from .connection_helpers import VERSIONS, header, request_headers, serving

pytestmark = pytest.mark.anyio


async def low_level_server(connection: HTTPConnection) -> None:
    """Answer every request with its path, using only the low-level API."""
    # Bounded by the events the peer sends before it closes.
    while True:
        try:
            event = await connection.receive_event()
        except ConnectionClosed:
            return
        if isinstance(event, HeadersReceived):
            path = header(event.headers, b":path") or b""
            await connection.send_headers(event.stream_id, ((b":status", b"200"),))
            await connection.send_data(event.stream_id, path, end_stream=True)


@pytest.mark.parametrize("version", VERSIONS)
async def test_low_level_request_and_end(
    version: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    with anyio.fail_after(10):
        async with serving(
            version,
            low_level_server,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            connection = served.connection
            assert (
                connection.http_version == {"1.1": "1.1", "2": "2", "3": "3"}[version]
            )
            assert isinstance(connection.error_codes, HTTPErrorCodes)
            stream_id = connection.get_available_stream_id()
            await connection.send_headers(
                stream_id, request_headers("POST", "/low"), timeout=5
            )
            await connection.send_data(stream_id, b"body", end_stream=True, timeout=5)
            events: list[Event] = []
            # Bounded: the server answers with one short response.
            while not (
                isinstance(
                    event := await connection.receive_event(timeout=5), DataReceived
                )
                and event.end_stream
            ):
                events.append(event)
            events.append(event)
            events = [e for e in events if not isinstance(e, SendBufferDrained)]
            assert isinstance(events[0], HeadersReceived), events
            body = b"".join(e.data for e in events if isinstance(e, DataReceived))
            assert body == b"/low"
            await connection.send_stream_reset(stream_id)
            await connection.aclose()
            await connection.aclose()
            assert connection.has_expired()


async def test_receive_event_ends_with_connection_terminated(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async def close_at_once(connection: HTTPConnection) -> None:
        await connection.aclose()

    with anyio.fail_after(10):
        async with serving(
            "2",
            close_at_once,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            networking=networking,
        ) as served:
            events: list[Event] = []
            with pytest.raises(ConnectionClosed):
                # Bounded: the connection ends after a GOAWAY.
                while True:
                    events.append(await served.connection.receive_event())
            # The GOAWAY may be lost: the client's SETTINGS ACK can hit the
            # closed connection first, as on a real network.
            assert isinstance(events[-1], ConnectionTerminated)
            # The stream's addresses were kept for logging.
            assert served.connection.remote_address == ("127.0.0.1", served.address[1])
            assert served.connection.local_address is not None


async def test_connection_and_stream_must_fit() -> None:
    net = MemoryNetworking()
    stream = await net.connect_udp(("127.0.0.1", 9))
    protocol = HTTP2ClientFactory()()
    with pytest.raises(TypeError, match="cannot run"):
        HTTPConnection(protocol, stream)
    quic = HTTP3ClientFactory()(
        remote_address=("127.0.0.1", 9),
        server_name="localhost",
        tls_config=ClientTLSConfig(),
    )
    with pytest.raises(TypeError):
        HTTPConnection(quic, stream, initial_data=b"x")
    await stream.aclose()


async def test_tls_attributes_are_readable(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    with anyio.fail_after(10):
        async with serving(
            "2",
            low_level_server,
            server_tls=server_tls_config,
            client_tls=client_tls_config,
            tls=True,
            networking=networking,
        ) as served:
            connection = served.connection
            assert connection.extra(TLSAttribute.alpn_protocol) == "h2"
            await connection.aclose()
            assert connection.extra(TLSAttribute.tls_version) == "TLSv1.3"
            assert (
                connection.extra(SocketAttribute.remote_address)[1]
                == (served.address[1])
            )


# -- a scripted protocol -------------------------------------------------------


@dataclass(frozen=True)
class Custom(Event):
    """An event type the connection does not know."""

    note: str


class ScriptedProtocol(HTTPOverTCPProtocol):
    """Emits one prepared batch of events per byte received; sends nothing."""

    def __init__(self, batches: Sequence[Sequence[Event]]) -> None:
        self.batches = deque(batches)
        self.events: deque[Event] = deque()
        self.submitted: list[tuple[str, int]] = []
        self.next_id = 1
        self.expired = False
        self.terminated = False

    http_version = "2"
    multiplexed = True
    error_codes = HTTP2_ERROR_CODES

    def is_available(self) -> bool:
        return not self.expired

    def has_expired(self) -> bool:
        return self.expired

    def get_available_stream_id(self) -> int:
        return self.next_id

    def submit_headers(
        self, stream_id: int, headers: Headers, end_stream: bool = False
    ) -> None:
        self.submitted.append(("headers", stream_id))
        self.next_id = max(self.next_id, stream_id + 2)

    def submit_data(
        self, stream_id: int, data: bytes, end_stream: bool = False
    ) -> None:
        self.submitted.append(("data", stream_id))

    def pending_data_size(self, stream_id: int) -> int:
        return 0

    def submit_stream_reset(self, stream_id: int, error_code: int = 0) -> None:
        self.submitted.append(("reset", stream_id))

    def submit_close(self, error_code: int = 0) -> None:
        self.submitted.append(("close", 0))
        self.expired = True

    def next_event(self) -> Event | None:
        return self.events.popleft() if self.events else None

    def bytes_received(self, data: bytes) -> None:
        # One batch per byte, however the bytes were split into reads.
        for _ in range(min(len(data), len(self.batches))):
            self.events.extend(self.batches.popleft())

    def eof_received(self) -> None:
        self.connection_lost()

    def connection_lost(self) -> None:
        if not self.terminated:
            self.terminated = self.expired = True
            self.events.append(ConnectionTerminated(0, "scripted end"))

    def bytes_to_send(self) -> bytes:
        return b""


async def _scripted(
    batches: Sequence[Sequence[Event]], *, max_buffered_data: int = 1 << 20
) -> tuple[HTTPConnection, ScriptedProtocol, ByteStream]:
    net = MemoryNetworking()
    listener = await net.listen_tcp(("127.0.0.1", 0))
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    client = await net.connect_tcp(address)
    assert hasattr(listener, "accept")
    peer: ByteStream = await listener.accept()
    protocol = ScriptedProtocol(batches)
    connection = HTTPConnection(protocol, client, max_buffered_data=max_buffered_data)
    await connection.open()
    return connection, protocol, peer


async def test_goaway_refuses_the_streams_it_lists() -> None:
    goaway = GoawayReceived(1, 0, unprocessed_stream_ids=(3,))
    connection, protocol, peer = await _scripted(
        [[HeadersReceived(1, ((b":status", b"200"),), end_stream=True), goaway]]
    )
    with anyio.fail_after(5):
        first = await connection.open_stream(
            request_headers("GET", "/1"), end_stream=True
        )
        second = await connection.open_stream(request_headers("GET", "/3"))
        await peer.send(b"go")
        (only,) = [event async for event in first]
        assert isinstance(only, HeadersReceived)
        assert only.stream_id == 1
        assert [event async for event in second] == [goaway]
        with pytest.raises(StreamReset, match="not processed") as caught:
            await second.send_data(b"x")
        assert caught.value.error_code is None
        assert caught.value.by_peer
        assert await connection.receive_event() == goaway
        assert connection.has_expired() is False
        await connection.aclose()
    assert ("close", 0) in protocol.submitted


async def test_unknown_events_and_flow_events_reach_the_connection_queue() -> None:
    custom = Custom("hello")
    drained = SendBufferDrained(1)
    reset = StreamResetSent(5, 1)
    connection, _, peer = await _scripted([[custom, drained, reset]])
    with anyio.fail_after(5):
        await connection.send_headers(5, request_headers("GET", "/"))
        await peer.send(b"go")
        assert await connection.receive_event() == custom
        assert await connection.receive_event() == drained
        assert await connection.receive_event() == reset
        with pytest.raises(ReadTimeout):
            await connection.receive_event(timeout=0.05)
        await connection.aclose()


async def test_events_of_streams_nobody_follows_are_dropped() -> None:
    late = DataReceived(7, b"late", end_stream=True)
    connection, _, peer = await _scripted([[late], [GoawayReceived(9, 0)]])
    with anyio.fail_after(5):
        stream = await connection.open_stream(request_headers("GET", "/"))
        await stream.aclose()
        await peer.send(b"1")
        await peer.send(b"2")
        # Only the connection-wide event is kept in per-stream use.
        assert isinstance(await connection.receive_event(), GoawayReceived)
        await connection.aclose()


async def test_a_full_connection_queue_pauses_and_resumes() -> None:
    data = [DataReceived(1, b"x" * 1000) for _ in range(20)]
    connection, _, peer = await _scripted(
        [data[:10], data[10:]], max_buffered_data=2000
    )
    with anyio.fail_after(5):
        await connection.send_headers(1, request_headers("GET", "/"))
        await peer.send(b"1")
        await peer.send(b"2")
        got = [await connection.receive_event() for _ in range(20)]
        assert got == data
        await peer.aclose()
        terminated = await connection.receive_event()
        assert isinstance(terminated, ConnectionTerminated)
        assert terminated.message == "scripted end"
        with pytest.raises(ConnectionClosed, match="scripted end"):
            await connection.receive_event()


async def test_protocol_errors_pass_through() -> None:
    class Refusing(ScriptedProtocol):
        def submit_headers(
            self, stream_id: int, headers: Headers, end_stream: bool = False
        ) -> None:
            raise LocalProtocolError("refused")

    net = MemoryNetworking()
    listener = await net.listen_tcp(("127.0.0.1", 0))
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    client = await net.connect_tcp(address)
    connection = HTTPConnection(Refusing([]), client)
    async with connection:
        with pytest.raises(LocalProtocolError, match="refused"):
            await connection.open_stream(request_headers("GET", "/"))
    await listener.aclose()
