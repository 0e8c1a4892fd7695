"""The QUIC listener's routing, fed hand-built datagrams, on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest
from anyio.abc import SocketAttribute, TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from hcore import Address, ClientTLSConfig, Datagram, ServerTLSConfig
from hcore.events import DataReceived, Event, HeadersReceived
from hcore.protocols import HTTPOverQUICProtocol
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from hcore_io.networking import (
    ClientNetworking,
    DatagramStream,
    EpollNetworking,
    MemoryNetworking,
    QUICStream,
    ServerNetworking,
    SystemNetworking,
)
from hcore_io.networking._datagrams import UDPSocketStream

from .quic_packets import (
    QUIC_V1,
    initial_datagram,
    long_header_datagram,
    short_header_datagram,
)

pytestmark = pytest.mark.anyio

CID_LENGTH = 8
QUIET = 0.1  # how long to wait to be sure nothing arrives
REQUEST = (
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"localhost"),
    (b":path", b"/"),
)


@dataclass
class Harness:
    """A QUIC listener, a plain UDP client socket and the streams it spawned."""

    listener_address: Address
    client: DatagramStream
    client_address: Address
    streams: MemoryObjectReceiveStream[QUICStream]
    task_group: TaskGroup

    async def send(self, data: bytes) -> None:
        await self.client.send(Datagram(data, self.listener_address))

    async def new_stream(self) -> QUICStream:
        return await self.streams.receive()

    async def assert_nothing_happened(self, probe_cid: bytes = b"P" * 8) -> None:
        """Check that what was sent before spawned no stream and got no reply.

        A probe connection goes through the same socket in order: its stream
        must be the next one, and its reply the next datagram back.
        """
        await self.send(initial_datagram(probe_cid))
        probe = await self.new_stream()
        first = await probe.receive()
        assert first.data == initial_datagram(probe_cid)
        await probe.send(Datagram(b"probe reply", first.address))
        assert await self.client.receive() == Datagram(
            b"probe reply", self.listener_address
        )
        await probe.aclose()


@pytest.fixture(params=["system", "epoll", "memory"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@asynccontextmanager
async def _harness(
    backend: str, host: str = "127.0.0.1", queue_size: int = 256
) -> AsyncIterator[Harness]:
    net: ServerNetworking
    client: DatagramStream
    if backend == "system":
        net = SystemNetworking(quic_queue_size=queue_size)
    elif backend == "epoll":
        net = EpollNetworking(quic_queue_size=queue_size)
    else:
        net = MemoryNetworking(datagram_queue_size=queue_size)
    listener = await net.listen_quic(
        (host, 0),
        quic_connection_id_length=CID_LENGTH,
        quic_supported_versions=[QUIC_V1],
    )
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    listener_address = (str(address[0]), int(address[1]))
    if isinstance(net, MemoryNetworking):
        client = await net.connect_udp(listener_address)
    else:
        client = UDPSocketStream(await anyio.create_udp_socket(local_host=host))
    client_address = client.extra(SocketAttribute.local_address)
    assert isinstance(client_address, tuple)
    send, receive = anyio.create_memory_object_stream[QUICStream](16)
    async with send, receive, client, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, send.send)
        yield Harness(
            listener_address,
            client,
            (str(client_address[0]), int(client_address[1])),
            receive,
            tg,
        )
        await listener.aclose()


async def test_new_connection_id_spawns_one_stream(backend: str) -> None:
    with anyio.fail_after(10):
        async with _harness(backend) as h:
            first = initial_datagram(b"A" * 8)
            await h.send(first)
            stream = await h.new_stream()
            assert await stream.receive() == Datagram(first, h.client_address)
            # The client's next Initial carries the same id: same connection.
            second = initial_datagram(b"A" * 8, size=1300)
            await h.send(second)
            assert await stream.receive() == Datagram(second, h.client_address)
            await h.assert_nothing_happened()
            # Another id: another connection.
            await h.send(initial_datagram(b"B" * 8))
            other = await h.new_stream()
            assert other is not stream
            assert other.extra(SocketAttribute.remote_address) == h.client_address
            assert other.extra(SocketAttribute.local_address) == h.listener_address
            await stream.aclose()
            await other.aclose()


async def test_stream_replies_reach_the_client(backend: str) -> None:
    with anyio.fail_after(10):
        async with _harness(backend) as h:
            await h.send(initial_datagram(b"A" * 8))
            stream = await h.new_stream()
            datagram = await stream.receive()
            await stream.send(Datagram(b"server flight", datagram.address))
            assert await h.client.receive() == Datagram(
                b"server flight", h.listener_address
            )
            await stream.aclose()


async def test_undeliverable_replies_are_dropped(backend: str) -> None:
    with anyio.fail_after(10):
        async with _harness(backend) as h:
            await h.send(initial_datagram(b"A" * 8))
            stream = await h.new_stream()
            datagram = await stream.receive()
            # The OS refuses broadcasts on this socket: the datagram is lost.
            await stream.send(Datagram(b"lost", ("255.255.255.255", 9)))
            await stream.send(Datagram(b"found", datagram.address))
            assert (await h.client.receive()).data == b"found"
            await stream.aclose()


async def test_ipv6_listener(backend: str) -> None:
    with anyio.fail_after(10):
        async with _harness(backend, host="::1") as h:
            assert h.listener_address[0] == "::1"
            await h.send(initial_datagram(b"A" * 8))
            stream = await h.new_stream()
            assert (await stream.receive()).address == h.client_address
            await stream.aclose()


async def test_unsupported_version_gets_version_negotiation(backend: str) -> None:
    with anyio.fail_after(10):
        async with _harness(backend) as h:
            await h.send(
                long_header_datagram(b"D" * 8, source_cid=b"S" * 5, version=0x0A0A0A0A)
            )
            reply = await h.client.receive()
            assert reply.address == h.listener_address
            data = reply.data
            # RFC 9000 §17.2.1: long header, version 0, ids swapped, versions.
            assert data[0] & 0x80
            assert data[1:5] == b"\x00\x00\x00\x00"
            assert data[5] == 5
            assert data[6:11] == b"S" * 5
            assert data[11] == 8
            assert data[12:20] == b"D" * 8
            assert data[20:] == QUIC_V1.to_bytes(4, "big")
            await h.assert_nothing_happened()


async def test_small_unsupported_version_is_not_answered(backend: str) -> None:
    with anyio.fail_after(10):
        async with _harness(backend) as h:
            await h.send(long_header_datagram(b"D" * 8, version=0x0A0A0A0A, size=600))
            await h.assert_nothing_happened()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc0\x00",  # truncated long header
        b"\xc0\x00\x00\x00\x01\x08AAAA",  # id longer than the datagram
        b"\xc0\x00\x00\x00\x01\x08AAAAAAAA\x05SS",  # source id truncated
        b"\x40AAA",  # short header shorter than our ids
        short_header_datagram(b"U" * 8),  # unknown connection
        initial_datagram(b"A" * 8, size=1199),  # unpadded Initial
        initial_datagram(b"A" * 7),  # RFC 9000 §7.2: id too short
        long_header_datagram(b"A" * 8, packet_type=2),  # Handshake, unknown id
        long_header_datagram(b"A" * 21),  # v1 ids are at most 20 bytes
        long_header_datagram(b"A" * 8, version=0),  # Version Negotiation
    ],
)
async def test_garbage_is_dropped(backend: str, data: bytes) -> None:
    with anyio.fail_after(10):
        async with _harness(backend) as h:
            await h.send(data)
            await h.assert_nothing_happened()


async def test_closed_stream_is_forgotten(backend: str) -> None:
    with anyio.fail_after(10):
        async with _harness(backend) as h:
            await h.send(initial_datagram(b"A" * 8))
            stream = await h.new_stream()
            await stream.receive()
            await stream.aclose()
            with pytest.raises(anyio.ClosedResourceError):
                await stream.receive()
            with pytest.raises(anyio.ClosedResourceError):
                await stream.send(Datagram(b"x", h.client_address))
            stream.update_connection_ids([b"C" * 8])
            # Its id no longer routes anywhere...
            await h.send(short_header_datagram(b"A" * 8))
            await h.assert_nothing_happened()
            # ...and a new Initial with that id starts a new connection.
            await h.send(initial_datagram(b"A" * 8))
            again = await h.new_stream()
            assert again is not stream
            await again.aclose()


async def test_connection_ids_follow_updates(backend: str) -> None:
    with anyio.fail_after(10):
        async with _harness(backend) as h:
            original = b"A" * 8
            await h.send(initial_datagram(original))
            stream = await h.new_stream()
            await stream.receive()
            await h.send(initial_datagram(b"B" * 8))
            other = await h.new_stream()
            stream.update_connection_ids([b"1" * 8, b"2" * 8, b"B" * 8])
            for cid in (b"1" * 8, b"2" * 8, original):
                packet = short_header_datagram(cid)
                await h.send(packet)
                assert (await stream.receive()).data == packet
            # An id held by another connection is not taken from it.
            await h.send(short_header_datagram(b"B" * 8))
            assert (await other.receive()).data == initial_datagram(b"B" * 8)
            assert (await other.receive()).data == short_header_datagram(b"B" * 8)
            # Retired ids stop routing; the original one stays while open.
            stream.update_connection_ids([b"2" * 8])
            await h.send(short_header_datagram(b"1" * 8))
            await h.send(short_header_datagram(original))
            assert (await stream.receive()).data == short_header_datagram(original)
            await h.assert_nothing_happened()
            await stream.aclose()
            await other.aclose()


async def test_listener_close_ends_streams(backend: str) -> None:
    with anyio.fail_after(10):
        async with _harness(backend) as h:
            await h.send(initial_datagram(b"A" * 8))
            stream = await h.new_stream()
            assert (await stream.receive()).data == initial_datagram(b"A" * 8)
            h.task_group.cancel_scope.cancel()
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
        with pytest.raises(anyio.BrokenResourceError):
            await stream.send(Datagram(b"x", h.client_address))
        stream.update_connection_ids([b"Z" * 8])
        await stream.aclose()


async def test_full_queue_drops_datagrams() -> None:
    with anyio.fail_after(10):
        async with _harness("memory", queue_size=2) as h:
            await h.send(initial_datagram(b"A" * 8))
            stream = await h.new_stream()
            for index in range(5):
                await h.send(short_header_datagram(b"A" * 8, bytes([index])))
            await anyio.wait_all_tasks_blocked()
            received = [await stream.receive(), await stream.receive()]
            assert [d.data for d in received] == [
                initial_datagram(b"A" * 8),
                short_header_datagram(b"A" * 8, b"\x00"),
            ]
            with anyio.move_on_after(QUIET) as scope:
                await stream.receive()
            assert scope.cancelled_caught
            await stream.aclose()


async def _pump(
    protocol: HTTPOverQUICProtocol,
    stream: DatagramStream,
    done: Callable[[], bool],
    quic_stream: QUICStream | None = None,
) -> None:
    """Drive a QUIC protocol over a stream until ``done()``: a tiny connection."""
    # Bounded: a handshake and one exchange take a few dozen rounds.
    for _ in range(500):
        protocol.clock(anyio.current_time())
        for datagram in protocol.datagrams_to_send():
            await stream.send(datagram)
        if quic_stream is not None:
            quic_stream.update_connection_ids(protocol.connection_ids)
        if done():
            return
        timer = protocol.get_timer()
        delay = 1.0 if timer is None else max(0.0, timer - anyio.current_time())
        with anyio.move_on_after(delay):
            datagram = await stream.receive()
            protocol.clock(anyio.current_time())
            protocol.datagram_received(datagram)
    raise AssertionError("the exchange did not finish")


async def test_real_quic_connection_through_the_listener(
    backend: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    server_factory = HTTP3ServerFactory()
    net: ClientNetworking | ServerNetworking
    if backend == "system":
        net = SystemNetworking()
    elif backend == "epoll":
        net = EpollNetworking()
    else:
        net = MemoryNetworking()
    listener = await net.listen_quic(
        ("127.0.0.1", 0),
        quic_connection_id_length=server_factory.quic_connection_id_length,
        quic_supported_versions=server_factory.quic_supported_versions,
    )
    port = listener.extra(SocketAttribute.local_port)
    connections: list[QUICStream] = []

    async def serve_one(stream: QUICStream) -> None:
        connections.append(stream)
        protocol = server_factory(tls_config=server_tls_config)

        def answer() -> bool:
            # Bounded by the events the protocol has queued.
            while (event := protocol.next_event()) is not None:
                if isinstance(event, HeadersReceived):
                    protocol.submit_headers(event.stream_id, [(b":status", b"200")])
                    protocol.submit_data(event.stream_id, b"routed", end_stream=True)
            return False

        with anyio.move_on_after(5):
            await _pump(protocol, stream, answer, stream)

    events: list[Event] = []
    requested: list[int] = []
    assert isinstance(net, ClientNetworking)
    client = await net.connect_udp(("localhost", port))
    remote = client.extra(SocketAttribute.remote_address)
    assert isinstance(remote, tuple)
    protocol = HTTP3ClientFactory()(
        remote_address=remote, server_name="localhost", tls_config=client_tls_config
    )

    def request_once() -> bool:
        # Bounded by the events the protocol has queued.
        while (event := protocol.next_event()) is not None:
            events.append(event)
        if not requested and protocol.is_available():
            stream_id = protocol.get_available_stream_id()
            protocol.submit_headers(stream_id, REQUEST, end_stream=True)
            requested.append(stream_id)
        return any(isinstance(e, DataReceived) and e.end_stream for e in events)

    with anyio.fail_after(10):
        async with listener, client, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve_one)
            await _pump(protocol, client, request_once)
            tg.cancel_scope.cancel()
    assert len(connections) == 1
    assert [e.data for e in events if isinstance(e, DataReceived)] == [b"routed"]
