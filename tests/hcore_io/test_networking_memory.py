"""MemoryNetworking: in-process TCP pipes, memory "TLS", UDP and QUIC routing."""

from __future__ import annotations

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSAttribute

from hcore import Address, ClientTLSConfig, Datagram, ServerTLSConfig
from hcore_io import ConnectError, ConnectTimeout, NetworkError
from hcore_io.networking import (
    ClientNetworking,
    MemoryNetworking,
    QUICStream,
    ServerNetworking,
)

from .quic_packets import initial_datagram

pytestmark = pytest.mark.anyio


async def _connected_pair(
    net: MemoryNetworking,
) -> tuple[ByteStream, ByteStream, Address]:
    listener = await net.listen_tcp(("127.0.0.1", 0))
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    client = await net.connect_tcp(address)
    assert hasattr(listener, "accept")
    server: ByteStream = await listener.accept()
    return client, server, address


async def test_is_client_and_server_networking() -> None:
    net = MemoryNetworking()
    assert isinstance(net, ClientNetworking)
    assert isinstance(net, ServerNetworking)


async def test_echo_through_serve() -> None:
    net = MemoryNetworking()
    listener = await net.listen_tcp(("127.0.0.1", 0))
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)

    async def echo(stream: ByteStream) -> None:
        async with stream:
            try:
                # Bounded by what the client sends before its EOF.
                while True:
                    await stream.send(await stream.receive())
            except anyio.EndOfStream:
                pass

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo)
            client = await net.connect_tcp(address)
            await client.send(b"hello")
            assert await client.receive() == b"hello"
            await client.send_eof()
            with pytest.raises(anyio.EndOfStream):
                await client.receive()
            await client.aclose()
            await listener.aclose()


async def test_addresses() -> None:
    net = MemoryNetworking()
    client, server, address = await _connected_pair(net)
    assert address[0] == "127.0.0.1"
    assert address[1] >= 49152
    assert client.extra(SocketAttribute.remote_address) == address
    assert server.extra(SocketAttribute.local_address) == address
    assert server.extra(SocketAttribute.remote_address) == client.extra(
        SocketAttribute.local_address
    )
    assert client.extra(SocketAttribute.remote_port) == address[1]


async def test_localhost_and_wildcard_listener() -> None:
    net = MemoryNetworking()
    listener = await net.listen_tcp(("0.0.0.0", 8080))
    await net.connect_tcp(("localhost", 8080))
    await net.connect_tcp(("10.0.0.1", 8080))
    await listener.aclose()
    with pytest.raises(ConnectError):
        await net.connect_tcp(("localhost", 8080))


async def test_ipv6_addresses() -> None:
    net = MemoryNetworking()
    listener = await net.listen_tcp(("::1", 0))
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    client = await net.connect_tcp(address)
    local = client.extra(SocketAttribute.local_address)
    assert isinstance(local, tuple)
    assert local[0] == "::1"


async def test_address_in_use() -> None:
    net = MemoryNetworking()
    await net.listen_tcp(("127.0.0.1", 8000))
    with pytest.raises(NetworkError):
        await net.listen_tcp(("127.0.0.1", 8000))


async def test_refused() -> None:
    net = MemoryNetworking()
    with pytest.raises(ConnectError):
        await net.connect_tcp(("127.0.0.1", 1))


async def test_backlog_full_times_out() -> None:
    net = MemoryNetworking(backlog=1)
    listener = await net.listen_tcp(("127.0.0.1", 0))
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    await net.connect_tcp(address)
    with pytest.raises(ConnectTimeout):
        await net.connect_tcp(address, timeout=0.05)


async def test_listener_close_closes_pending_connections() -> None:
    net = MemoryNetworking()
    listener = await net.listen_tcp(("127.0.0.1", 0))
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    client = await net.connect_tcp(address)
    await listener.aclose()
    with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
        await client.receive()


async def test_backpressure() -> None:
    net = MemoryNetworking(buffer_size=1000)
    client, server, _ = await _connected_pair(net)
    # Fits: returns at once.
    with anyio.fail_after(5):
        await client.send(b"x" * 1000)
    # Does not fit: waits for the reader.
    with anyio.move_on_after(0.05) as scope:
        await client.send(b"y")
    assert scope.cancelled_caught
    with anyio.fail_after(5):
        assert await server.receive(400) == b"x" * 400
        await client.send(b"y" * 400)
        received = b""
        # Bounded: 1000 bytes are buffered.
        while len(received) < 1000:
            received += await server.receive()
    assert received == b"x" * 600 + b"y" * 400


async def test_large_send_completes_as_reader_reads() -> None:
    net = MemoryNetworking(buffer_size=1024)
    client, server, _ = await _connected_pair(net)
    payload = bytes(range(256)) * 1024
    received = bytearray()

    async def read_all() -> None:
        # Bounded by the EOF after the payload.
        while True:
            try:
                received.extend(await server.receive(5000))
            except anyio.EndOfStream:
                return

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_all)
            await client.send(payload)
            await client.send_eof()
    assert received == payload


async def test_eof_is_half_close() -> None:
    net = MemoryNetworking()
    client, server, _ = await _connected_pair(net)
    with anyio.fail_after(5):
        await client.send(b"request")
        await client.send_eof()
        assert await server.receive() == b"request"
        with pytest.raises(anyio.EndOfStream):
            await server.receive()
        await server.send(b"response")
        assert await client.receive() == b"response"
        with pytest.raises(anyio.ClosedResourceError):
            await client.send(b"more")


async def test_close() -> None:
    net = MemoryNetworking(buffer_size=10)
    client, server, _ = await _connected_pair(net)
    with anyio.fail_after(5):
        await client.send(b"last")
        await client.aclose()
        await client.aclose()
        assert await server.receive() == b"last"
        with pytest.raises(anyio.EndOfStream):
            await server.receive()
        with pytest.raises(anyio.BrokenResourceError):
            await server.send(b"to nobody")
        with pytest.raises(anyio.ClosedResourceError):
            await client.receive()
        with pytest.raises(anyio.ClosedResourceError):
            await client.send(b"x")
        with pytest.raises(anyio.ClosedResourceError):
            await client.send_eof()


async def test_close_wakes_blocked_writer_and_reader() -> None:
    net = MemoryNetworking(buffer_size=4)
    client, server, _ = await _connected_pair(net)
    results: list[type[BaseException]] = []

    async def write() -> None:
        try:
            await client.send(b"too much for the buffer")
        except anyio.BrokenResourceError as exc:
            results.append(type(exc))

    reader, _, _ = await _connected_pair(net)

    async def read() -> None:
        try:
            await reader.receive()
        except anyio.ClosedResourceError as exc:
            results.append(type(exc))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            await anyio.wait_all_tasks_blocked()
            await server.aclose()
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
            await reader.aclose()
    assert results == [anyio.BrokenResourceError, anyio.ClosedResourceError]


async def test_receive_rejects_bad_size() -> None:
    net = MemoryNetworking()
    client, _, _ = await _connected_pair(net)
    with pytest.raises(ValueError, match="max_bytes"):
        await client.receive(0)


async def test_concurrent_receive_is_refused() -> None:
    net = MemoryNetworking()
    client, _, _ = await _connected_pair(net)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.receive)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(anyio.BusyResourceError):
                await client.receive()
            tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("server_alpn", "client_alpn", "selected"),
    [
        (("h2", "http/1.1"), ("http/1.1", "h2"), "h2"),
        (("http/1.1",), ("h2", "http/1.1"), "http/1.1"),
        (("h2",), ("http/1.1",), None),
        ((), (), None),
    ],
)
async def test_tls_alpn(
    server_alpn: tuple[str, ...], client_alpn: tuple[str, ...], selected: str | None
) -> None:
    net = MemoryNetworking()
    listener = await net.listen_tcp_tls(
        ("127.0.0.1", 0), tls_config=ServerTLSConfig(), alpn_protocols=server_alpn
    )
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    client = await net.connect_tcp_tls(
        address,
        server_name="example.com",
        tls_config=ClientTLSConfig(),
        alpn_protocols=client_alpn,
    )
    assert hasattr(listener, "accept")
    server: ByteStream = await listener.accept()
    assert client.extra(TLSAttribute.alpn_protocol) == selected
    assert server.extra(TLSAttribute.alpn_protocol) == selected
    assert client.extra(TLSAttribute.tls_version) == "TLSv1.3"
    assert server.extra(TLSAttribute.server_side) is True
    assert client.extra(TLSAttribute.server_side) is False
    with anyio.fail_after(5):
        await client.send(b"ping")
        assert await server.receive() == b"ping"


async def test_tls_and_plain_do_not_mix() -> None:
    net = MemoryNetworking()
    tls_listener = await net.listen_tcp_tls(
        ("127.0.0.1", 0), tls_config=ServerTLSConfig()
    )
    plain_listener = await net.listen_tcp(("127.0.0.1", 0))
    tls_address = tls_listener.extra(SocketAttribute.local_address)
    plain_address = plain_listener.extra(SocketAttribute.local_address)
    assert isinstance(tls_address, tuple)
    assert isinstance(plain_address, tuple)
    with pytest.raises(ConnectError):
        await net.connect_tcp(tls_address)
    with pytest.raises(ConnectError):
        await net.connect_tcp_tls(plain_address)
    assert plain_listener.extra(SocketAttribute.local_port) == plain_address[1]


async def test_udp_datagrams_between_sockets() -> None:
    net = MemoryNetworking()
    listener = await net.listen_quic(
        ("127.0.0.1", 0), quic_connection_id_length=8, quic_supported_versions=[1]
    )
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    client = await net.connect_udp(("localhost", address[1]))
    assert client.extra(SocketAttribute.remote_address) == address
    received = []

    async def handler(stream: QUICStream) -> None:
        # Closing the connection's stream lets the closed listener finish.
        async with stream:
            datagram = await stream.receive()
            received.append(datagram)
            await stream.send(Datagram(b"reply", datagram.address))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler)
            await client.send(Datagram(initial_datagram(b"c" * 8), ("ignored", 0)))
            reply = await client.receive()
            await listener.aclose()
    assert reply == Datagram(b"reply", address)
    assert received[0].address == client.extra(SocketAttribute.local_address)


async def test_udp_drops_datagrams_from_strangers() -> None:
    net = MemoryNetworking()
    listener = await net.listen_quic(
        ("127.0.0.1", 0), quic_connection_id_length=8, quic_supported_versions=[1]
    )
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    client = await net.connect_udp(("127.0.0.1", 9999))
    local = client.extra(SocketAttribute.local_address)
    assert isinstance(local, tuple)
    stranger = await net.connect_udp(local)
    await stranger.send(Datagram(b"from a stranger", local))
    with anyio.move_on_after(0.05) as scope:
        await client.receive()
    assert scope.cancelled_caught
    await client.aclose()
    await stranger.send(Datagram(b"to nobody", local))
    await stranger.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await stranger.send(Datagram(b"x", local))


async def test_wildcard_udp_socket_answers_from_the_address_used() -> None:
    net = MemoryNetworking(datagram_queue_size=1)
    listener = await net.listen_quic(
        ("0.0.0.0", 4433), quic_connection_id_length=8, quic_supported_versions=[1]
    )
    client = await net.connect_udp(("localhost", 4433))
    assert client.extra(SocketAttribute.remote_address) == ("127.0.0.1", 4433)
    streams: list[QUICStream] = []

    async def handler(stream: QUICStream) -> None:
        streams.append(stream)
        async with stream:
            datagram = await stream.receive()
            await stream.send(Datagram(b"reply", datagram.address))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler)
            await client.send(Datagram(initial_datagram(b"c" * 8), ("x", 0)))
            assert await client.receive() == Datagram(b"reply", ("127.0.0.1", 4433))
            await listener.aclose()
    assert len(streams) == 1


async def test_serve_in_a_given_task_group() -> None:
    net = MemoryNetworking()
    listener = await net.listen_tcp(("127.0.0.1", 0))
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    served: list[ByteStream] = []

    async def handler(stream: ByteStream) -> None:
        served.append(stream)
        await stream.aclose()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler, tg)
            client = await net.connect_tcp(address)
            with pytest.raises(anyio.EndOfStream):
                await client.receive()
            await listener.aclose()
    assert len(served) == 1
