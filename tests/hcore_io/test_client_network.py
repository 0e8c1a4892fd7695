"""Happy Eyeballs (RFC 8305) and CONNECT proxies under the client.

Every test runs on asyncio and Trio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import pytest

from hcore import Address, ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived
from hcore.protocols.http1 import HTTP1ServerFactory
from hcore_io import ConnectError
from hcore_io.client import (
    URL,
    Client,
    ConnectionPool,
    HappyEyeballsNetworking,
    ProxyNetworking,
    Request,
    system_resolver,
)
from hcore_io.client._networking import NetworkingWrapper, interleave_families
from hcore_io.connections import HTTPConnection, HTTPOverTCPListener
from hcore_io.networking import (
    ByteStream,
    ClientNetworking,
    MemoryNetworking,
)

from .client_helpers import client_server
from .conftest import SocketBackend

pytestmark = pytest.mark.anyio


async def _both_loopbacks(host: str, port: int) -> Sequence[str]:
    # This machine's /etc/hosts maps "localhost" to 127.0.0.1 only; a dual
    # stack host would also give ::1 (first).
    assert host == "localhost"
    return ["::1", "127.0.0.1"]


class _Blackhole(NetworkingWrapper):
    """Connections to some addresses never complete (a dropped SYN)."""

    def __init__(self, networking: ClientNetworking, hosts: set[str]) -> None:
        super().__init__(networking)
        self.hosts = hosts
        self.tried: list[str] = []

    async def connect_tcp(
        self,
        address: Address,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ByteStream:
        self.tried.append(address[0])
        if address[0] in self.hosts:
            await anyio.sleep_forever()
        return await super().connect_tcp(address, timeout=timeout)


def test_interleave_families() -> None:
    assert interleave_families(["::1", "::2", "1.1.1.1", "2.2.2.2", "3.3.3.3"]) == [
        "::1",
        "1.1.1.1",
        "::2",
        "2.2.2.2",
        "3.3.3.3",
    ]
    assert interleave_families(["1.1.1.1", "::1"]) == ["1.1.1.1", "::1"]


async def test_system_resolver() -> None:
    assert "127.0.0.1" in await system_resolver("localhost", 80)
    with pytest.raises(ConnectError):
        await system_resolver("no-such-host.invalid", 80)


@pytest.mark.parametrize("family_host", ["127.0.0.1", "::1"])
async def test_localhost_with_a_server_on_one_family(
    family_host: str, server_tls_config: ServerTLSConfig, networking: SocketBackend
) -> None:
    system = networking
    async with client_server(system, server_tls_config, host=family_host) as server:
        eyeballs = HappyEyeballsNetworking(system, resolver=_both_loopbacks, delay=2.0)
        pool = ConnectionPool(eyeballs, happy_eyeballs=False)
        async with Client(pool=pool) as client:
            started = anyio.current_time()
            response = await client.get(f"http://localhost:{server.tcp[1]}/ok")
            assert response.content == b"ok"
            # A refused attempt starts the next one at once (RFC 8305 §5).
            assert anyio.current_time() - started < 1.5
        await pool.aclose()
        assert eyeballs.last_connected == {"localhost": family_host}


async def test_a_hanging_family_loses_after_the_attempt_delay(
    server_tls_config: ServerTLSConfig,
) -> None:
    memory = MemoryNetworking()
    blackhole = _Blackhole(memory, {"::1"})
    networking = HappyEyeballsNetworking(blackhole, resolver=_both_loopbacks)
    async with client_server(memory, server_tls_config) as server:
        started = anyio.current_time()
        stream = await networking.connect_tcp(("localhost", server.tcp[1]))
        elapsed = anyio.current_time() - started
        await stream.aclose()
        assert blackhole.tried == ["::1", "127.0.0.1"]
        assert 0.2 < elapsed < 2.0
        assert networking.last_connected == {"localhost": "127.0.0.1"}
        # Through the pool's own Happy Eyeballs, with TLS.
        pool = ConnectionPool(blackhole, resolver=_both_loopbacks)
        async with pool:
            response = await pool.handle_request(
                Request("GET", URL(server.url("/ok", tls=True)))
            )
            assert response.http_version == "2"
            assert await response.aread() == b"ok"


async def test_every_address_failing() -> None:
    networking = HappyEyeballsNetworking(MemoryNetworking(), resolver=_both_loopbacks)
    with pytest.raises(ConnectError, match="every address failed"):
        await networking.connect_tcp(("localhost", 9))


@asynccontextmanager
async def _connect_proxy(
    networking: SocketBackend,
    authorities: list[str],
    tls_config: ServerTLSConfig | None = None,
) -> AsyncIterator[Address]:
    """A CONNECT proxy on HTTP/1.1 that records the authorities asked for."""

    async def tunnel(connection: HTTPConnection) -> None:
        stream = await connection.accept_stream()
        if stream is None:
            return
        first = await stream.receive_event()
        assert isinstance(first, HeadersReceived)
        authority = dict(first.headers)[b":authority"].decode()
        authorities.append(authority)
        host, _, port = authority.rpartition(":")
        upstream = await networking.connect_tcp((host.strip("[]"), int(port)))
        await stream.send_headers([(b":status", b"200")])

        async def client_to_origin() -> None:
            # Bounded by the tunnel's bytes.
            async for event in stream:
                if isinstance(event, DataReceived) and event.data:
                    await upstream.send(event.data)
            group.cancel_scope.cancel()

        async def origin_to_client() -> None:
            try:
                # Bounded by the origin's bytes.
                while True:
                    await stream.send_data(await upstream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
            group.cancel_scope.cancel()

        async with upstream, anyio.create_task_group() as group:
            group.start_soon(client_to_origin)
            group.start_soon(origin_to_client)

    listener = await HTTPOverTCPListener.create(
        HTTP1ServerFactory(),
        networking,
        local_address=("127.0.0.1", 0),
        tls_config=tls_config,
    )
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, tunnel)
        try:
            yield listener.local_addresses[0]
        finally:
            await listener.aclose()
            group.cancel_scope.cancel()


@pytest.mark.parametrize("proxy_scheme", ["http", "https"])
async def test_requests_through_a_connect_proxy(
    proxy_scheme: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    system = networking
    authorities: list[str] = []
    proxy_tls = server_tls_config if proxy_scheme == "https" else None
    async with (
        client_server(system, server_tls_config) as server,
        _connect_proxy(system, authorities, proxy_tls) as proxy,
    ):
        pool = ConnectionPool(
            system,
            tls_config=client_tls_config,
            proxy=f"{proxy_scheme}://localhost:{proxy[1]}",
            proxy_tls_config=client_tls_config,
        )
        async with pool, Client(pool=pool) as client:
            plain = await client.get(server.url("/ok"))
            assert plain.http_version == "1.1" and plain.content == b"ok"
            secure = await client.get(server.url("/bytes/200000", tls=True))
            assert secure.http_version == "2" and len(secure.content or b"") == 200000
            assert (await client.get(server.url("/ok", tls=True))).content == b"ok"
        assert authorities == [
            f"localhost:{server.tcp[1]}",
            f"localhost:{server.tls[1]}",
        ]
        assert server.app.connections == {"tcp": 1, "tls": 1}


async def test_proxy_refusing_the_tunnel() -> None:
    memory = MemoryNetworking()

    async def refuse(connection: HTTPConnection) -> None:
        stream = await connection.accept_stream()
        assert stream is not None
        await stream.receive_event()
        await stream.send_headers([(b":status", b"407")], end_stream=True)

    listener = await HTTPOverTCPListener.create(
        HTTP1ServerFactory(), memory, local_address=("127.0.0.1", 0)
    )
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, refuse)
        port = listener.local_addresses[0][1]
        proxy = ProxyNetworking(memory, URL(f"http://127.0.0.1:{port}"))
        with pytest.raises(ConnectError, match="refused the tunnel"):
            await proxy.connect_tcp(("example.com", 80))
        with pytest.raises(ConnectError):
            await proxy.connect_udp(("example.com", 443))
        await listener.aclose()
        group.cancel_scope.cancel()
