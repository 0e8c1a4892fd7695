"""The client over HTTP/3: asked for directly, or switched to by Alt-Svc.

Every test runs on asyncio and Trio, on both networking backends.
"""

from __future__ import annotations

import socket

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io import ConnectTimeout, ReadTimeout
from hcore_io.client import Client, ConnectionPool, Timeouts
from hcore_io.networking import EpollNetworking, MemoryNetworking, SystemNetworking

from .client_helpers import client_server, pattern

pytestmark = pytest.mark.anyio

Networking = MemoryNetworking | SystemNetworking | EpollNetworking


@pytest.fixture(params=["memory", "system", "epoll"])
def networking(request: pytest.FixtureRequest) -> Networking:
    """Each backend in turn."""
    if request.param == "memory":
        return MemoryNetworking()
    if request.param == "epoll":
        return EpollNetworking()
    return SystemNetworking()


def _unused_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_http3_when_asked(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        client_server(networking, server_tls_config, quic=True) as server,
        Client(
            networking=networking,
            tls_config=client_tls_config,
            http_versions=("3",),
        ) as client,
    ):
        assert server.quic is not None
        base = f"https://127.0.0.1:{server.quic[1]}"
        async with anyio.create_task_group() as group:
            for index in range(20):
                group.start_soon(client.get, f"{base}/bytes/{index * 1000}")
        response = await client.get(f"{base}/bytes/300000")
        assert response.http_version == "3"
        assert response.content == pattern(300000)
        assert server.app.connections == {"quic": 1}
        metrics = client.pool.metrics.connections[0]
        assert metrics.http_version == "3" and metrics.requests == 21
        assert metrics.bytes_received > 300000


async def test_alt_svc_switches_to_http3(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        client_server(networking, server_tls_config, quic=True) as server,
        Client(networking=networking, tls_config=client_tls_config) as client,
    ):
        assert server.quic is not None
        advertise = server.url(
            f"/alt-svc?port={server.quic[1]}", tls=True, host="127.0.0.1"
        )
        first = await client.get(advertise)
        assert first.http_version == "2" and first.content == b"advertised"
        second = await client.get(server.url("/ok", tls=True, host="127.0.0.1"))
        assert second.http_version == "3" and second.content == b"ok"
        assert server.app.connections == {"tls": 1, "quic": 1}


async def test_alt_svc_falls_back_to_tcp_when_udp_is_blocked(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    pool = ConnectionPool(
        networking, tls_config=client_tls_config, quic_connect_timeout=1.0
    )
    async with (
        client_server(networking, server_tls_config) as server,
        Client(pool=pool) as client,
    ):
        # Nobody listens on this UDP port: QUIC hears nothing back.
        port = _unused_udp_port()
        url = server.url(f"/alt-svc?port={port}", tls=True, host="127.0.0.1")
        assert (await client.get(url)).http_version == "2"
        started = anyio.current_time()
        fallback = await client.get(url)
        assert fallback.http_version == "2" and fallback.content == b"advertised"
        assert 0.9 < anyio.current_time() - started < 10.0
        # The alternative is now marked broken: TCP at once.
        started = anyio.current_time()
        assert (await client.get(url)).http_version == "2"
        assert anyio.current_time() - started < 0.9
        assert server.app.connections == {"tls": 1}
    await pool.aclose()


async def test_http3_to_a_silent_port_times_out(
    networking: Networking, client_tls_config: ClientTLSConfig
) -> None:
    async with Client(
        networking=networking,
        tls_config=client_tls_config,
        http_versions=("3",),
        timeouts=Timeouts(connect=0.3),
        retries=0,
    ) as client:
        with pytest.raises(ConnectTimeout):
            await client.get(f"https://127.0.0.1:{_unused_udp_port()}/")


async def test_read_timeout_on_a_new_http3_connection(
    networking: Networking,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with (
        client_server(networking, server_tls_config, quic=True) as server,
        Client(
            networking=networking,
            tls_config=client_tls_config,
            http_versions=("3",),
            timeouts=Timeouts(connect=5.0, read=0.3),
            retries=0,
        ) as client,
    ):
        assert server.quic is not None
        with pytest.raises(ReadTimeout):
            await client.get(f"https://127.0.0.1:{server.quic[1]}/silent")
        response = await client.get(f"https://127.0.0.1:{server.quic[1]}/ok")
        assert response.content == b"ok"
