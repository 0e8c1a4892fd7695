"""connect_udp of both socket backends: resolution, addresses and source filtering."""

from __future__ import annotations

import socket

import anyio
import pytest
from anyio.abc import SocketAttribute, UDPSocket

from hcore import Datagram
from hcore_io import ConnectError, NetworkError

from .conftest import SocketNetworkingClass

pytestmark = pytest.mark.anyio


async def _echo_once(server: UDPSocket) -> None:
    data, address = await server.receive()
    await server.sendto(data.upper(), address[0], address[1])


@pytest.mark.parametrize(
    ("name", "bind_host"), [("localhost", None), ("127.0.0.1", None), ("::1", "::1")]
)
async def test_udp_echo(
    name: str, bind_host: str | None, networking_class: SocketNetworkingClass
) -> None:
    net = networking_class()
    # "localhost" may resolve to either family first: serve what it resolves to.
    infos = await anyio.getaddrinfo(name, 0, type=socket.SOCK_DGRAM)
    resolved_host = bind_host or str(infos[0][4][0])
    with anyio.fail_after(10):
        async with await anyio.create_udp_socket(
            local_host=resolved_host, local_port=0
        ) as server:
            port = server.extra(SocketAttribute.local_port)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_echo_once, server)
                async with await net.connect_udp((name, port)) as client:
                    remote = client.extra(SocketAttribute.remote_address)
                    assert remote == (resolved_host, port)
                    assert client.extra(SocketAttribute.remote_port) == port
                    await client.send(Datagram(b"ping", ("ignored", 1)))
                    assert await client.receive() == Datagram(b"PING", remote)


async def test_udp_drops_datagrams_from_other_sources(
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()
    with anyio.fail_after(10):
        async with (
            await anyio.create_udp_socket(local_host="127.0.0.1") as server,
            await anyio.create_udp_socket(local_host="127.0.0.1") as stranger,
        ):
            port = server.extra(SocketAttribute.local_port)
            async with await net.connect_udp(("127.0.0.1", port)) as client:
                await client.send(Datagram(b"hello", ("127.0.0.1", port)))
                _, client_address = await server.receive()
                await stranger.sendto(b"spoofed", "127.0.0.1", client_address[1])
                await stranger.sendto(b"spoofed", "127.0.0.1", client_address[1])
                await server.sendto(b"genuine", "127.0.0.1", client_address[1])
                assert await client.receive() == Datagram(
                    b"genuine", ("127.0.0.1", port)
                )


async def test_udp_unresolvable_name(networking_class: SocketNetworkingClass) -> None:
    net = networking_class()
    with anyio.fail_after(10), pytest.raises(ConnectError):
        await net.connect_udp(("name.invalid", 443))


async def test_udp_closed_stream(networking_class: SocketNetworkingClass) -> None:
    net = networking_class()
    client = await net.connect_udp(("127.0.0.1", 9))
    local = client.extra(SocketAttribute.local_address)
    assert isinstance(local, tuple)
    assert local[0] == "0.0.0.0"
    await client.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await client.receive()


async def test_quic_listener_address_in_use(
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()
    async with await anyio.create_udp_socket(local_host="127.0.0.1") as taken:
        port = taken.extra(SocketAttribute.local_port)
        with pytest.raises(NetworkError):
            await net.listen_quic(
                ("127.0.0.1", port),
                quic_connection_id_length=8,
                quic_supported_versions=[1],
            )
