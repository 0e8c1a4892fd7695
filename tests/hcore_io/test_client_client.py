"""Client: shorthands, streaming, timeouts, retries and redirects.

Every test runs on asyncio and Trio, over MemoryNetworking (timeouts also
over SystemNetworking), against the listeners of ``client_helpers``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import anyio
import pytest

from hcore import Address, ClientTLSConfig, ServerTLSConfig
from hcore_io import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ReadTimeout,
    WriteTimeout,
)
from hcore_io.client import Client, Timeouts, TooManyRedirects
from hcore_io.client._networking import NetworkingWrapper
from hcore_io.networking import ByteStream, ClientNetworking, MemoryNetworking

from .client_helpers import client_server, pattern

pytestmark = pytest.mark.anyio


class _CountingConnects(NetworkingWrapper):
    """Counts connection attempts; optionally never completes them."""

    def __init__(self, networking: ClientNetworking, *, hang: bool = False) -> None:
        super().__init__(networking)
        self.attempts = 0
        self.hang = hang

    async def connect_tcp(
        self,
        address: Address,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ByteStream:
        self.attempts += 1
        if self.hang:
            await anyio.sleep_forever()
        return await super().connect_tcp(address, timeout=timeout)


def _fields(body: bytes) -> dict[bytes, bytes]:
    pairs = [line.split(b": ", 1) for line in body.split(b"\n") if b": " in line]
    return {name: value for name, value in pairs}


async def test_shorthands_and_default_headers(
    server_tls_config: ServerTLSConfig, client_tls_config: ClientTLSConfig
) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        Client(
            networking=networking,
            tls_config=client_tls_config,
            headers=[(b"user-agent", b"hcore-test")],
        ) as client,
    ):
        for tls, version in ((False, "1.1"), (True, "2")):
            response = await client.get(server.url("/headers", tls=tls))
            assert response.status == 200 and response.http_version == version
            fields = _fields(response.content or b"")
            assert fields[b":method"] == b"GET"
            assert fields[b"user-agent"] == b"hcore-test"
        for method in ("post", "put", "patch"):
            response = await getattr(client, method)(
                server.url("/headers"), content=b"data"
            )
            assert (
                _fields(response.content or b"")[b":method"] == method.upper().encode()
            )
            assert (response.content or b"").endswith(b"body: data")
        for method in ("delete", "options", "head"):
            response = await getattr(client, method)(server.url("/ok"))
            assert response.status == 200
        response = await client.get(server.url("/nothing-here"))
        assert response.status == 404


async def test_stream_reads_body_in_pieces(server_tls_config: ServerTLSConfig) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        Client(networking=networking) as client,
    ):
        async with client.stream("GET", server.url("/bytes/3000000")) as response:
            assert response.get_header(b"content-length") == b"3000000"
            pieces = [len(chunk) async for chunk in response.stream]
        assert sum(pieces) == 3_000_000 and len(pieces) > 3
        # Leaving the block early resets the exchange; the pool goes on.
        async with client.stream("GET", server.url("/bytes/3000000")) as response:
            first = await response.stream.read_chunk()
            assert first is not None
        response = await client.get(server.url("/bytes/10"))
        assert response.content == pattern(10)


async def test_connect_timeout(server_tls_config: ServerTLSConfig) -> None:
    networking = _CountingConnects(MemoryNetworking(), hang=True)
    async with Client(
        networking=networking,
        timeouts=Timeouts(connect=0.2),
        retries=0,
        http_versions=("1.1",),
    ) as client:
        started = anyio.current_time()
        with pytest.raises(ConnectTimeout):
            await client.get("http://127.0.0.1:1/ok")
        assert 0.15 < anyio.current_time() - started < 2.0


async def test_read_timeouts_head_and_body(server_tls_config: ServerTLSConfig) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        Client(networking=networking, timeouts=Timeouts(read=0.2), retries=0) as client,
    ):
        with pytest.raises(ReadTimeout):
            await client.get(server.url("/silent"))
        async with client.stream("GET", server.url("/slow-body")) as response:
            assert response.status == 200
            with pytest.raises(ReadTimeout):
                await response.stream.aread()
        # Per request: a longer read timeout lets a slow answer through.
        response = await client.get(
            server.url("/slow?delay=0.3"), timeouts=Timeouts(read=2.0)
        )
        assert response.content == b"ok"


@pytest.mark.parametrize("tls", [False, True])
async def test_write_timeout(
    tls: bool, server_tls_config: ServerTLSConfig, client_tls_config: ClientTLSConfig
) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        Client(
            networking=networking,
            tls_config=client_tls_config,
            timeouts=Timeouts(write=0.2),
        ) as client,
    ):
        with pytest.raises(WriteTimeout):
            await client.post(server.url("/sink", tls=tls), content=pattern(4 << 20))


async def test_pool_timeout(server_tls_config: ServerTLSConfig) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        Client(networking=networking, max_connections=1) as client,
    ):
        async with client.stream("GET", server.url("/slow-body")):
            with pytest.raises(PoolTimeout):
                await client.get(server.url("/ok"), timeouts=Timeouts(pool=0.2))


async def test_connection_failures_are_retried_for_idempotent_requests_only() -> None:
    networking = _CountingConnects(MemoryNetworking())
    async with Client(
        networking=networking, retries=3, backoff_factor=0.05, http_versions=("1.1",)
    ) as client:
        started = anyio.current_time()
        with pytest.raises(ConnectError):
            await client.get("http://127.0.0.1:9/nobody")
        elapsed = anyio.current_time() - started
        assert networking.attempts == 4 and client.retry_count == 3
        # Backoff 0.05, 0.1, 0.2, each at least half of that.
        assert 0.17 < elapsed < 2.0
        for method in ("post", "patch"):
            networking.attempts = 0
            with pytest.raises(ConnectError):
                await getattr(client, method)("http://127.0.0.1:9/x", content=b"x")
            assert networking.attempts == 1
        # A streamed body cannot be sent again either.
        networking.attempts = 0

        async def body() -> AsyncIterator[bytes]:
            yield b"x"

        with pytest.raises(ConnectError):
            await client.put("http://127.0.0.1:9/x", content=body())
        assert networking.attempts == 1
        assert client.retry_count == 3


async def test_redirects_followed_limited_and_looping(
    server_tls_config: ServerTLSConfig,
) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        Client(networking=networking, max_redirects=5) as client,
    ):
        response = await client.get(server.url("/redirect/3"))
        assert response.content == b"arrived"
        assert [r.status for r in response.history] == [302, 302, 302]
        assert str(response.url).endswith("/redirect/0")
        with pytest.raises(TooManyRedirects):
            await client.get(server.url("/redirect/6"))
        with pytest.raises(TooManyRedirects):
            await client.get(server.url("/loop"))
        response = await client.get(server.url("/loop"), follow_redirects=False)
        assert response.status == 302
        # Bounded: /loop was asked for 6 + 1 times, /redirect/* 4 + 6 times.
        assert server.app.paths.count("/loop") == 7


def _to(server_url: str, status: int, target: str) -> str:
    from urllib.parse import quote

    return f"{server_url}?status={status}&url={quote(target, safe='')}"


@pytest.mark.parametrize(
    ("status", "method", "expected"),
    [(303, "POST", b"GET"), (302, "POST", b"GET"), (307, "POST", b"POST")],
)
async def test_redirect_methods(
    status: int, method: str, expected: bytes, server_tls_config: ServerTLSConfig
) -> None:
    networking = MemoryNetworking()
    async with (
        client_server(networking, server_tls_config) as server,
        Client(networking=networking) as client,
    ):
        url = _to(server.url("/to"), status, server.url("/headers"))
        response = await client.request(method, url, content=b"payload")
        fields = _fields(response.content or b"")
        assert fields[b":method"] == expected
        has_body = (response.content or b"").endswith(b"body: payload")
        assert has_body is (expected == b"POST")


async def test_cross_origin_redirect_drops_credentials(
    server_tls_config: ServerTLSConfig, client_tls_config: ClientTLSConfig
) -> None:
    networking = MemoryNetworking()
    secrets: Sequence[tuple[bytes, bytes]] = [
        (b"authorization", b"Bearer x"),
        (b"cookie", b"a=b"),
        (b"x-other", b"kept"),
    ]
    async with (
        client_server(networking, server_tls_config) as server,
        Client(networking=networking, tls_config=client_tls_config) as client,
    ):
        same = _to(server.url("/to"), 302, server.url("/headers"))
        fields = _fields((await client.get(same, headers=secrets)).content or b"")
        assert fields[b"authorization"] == b"Bearer x" and fields[b"cookie"] == b"a=b"
        other = _to(server.url("/to"), 302, server.url("/headers", tls=True))
        response = await client.get(other, headers=secrets)
        assert response.http_version == "2"
        fields = _fields(response.content or b"")
        assert b"authorization" not in fields and b"cookie" not in fields
        assert fields[b"x-other"] == b"kept"
