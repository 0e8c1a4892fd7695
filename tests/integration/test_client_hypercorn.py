"""The client against hypercorn over HTTP/3, directly and by Alt-Svc.

hypercorn advertises its QUIC port with ``Alt-Svc`` on its TCP responses.
Every test runs on asyncio and Trio.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
import trustme

from hcore import ClientTLSConfig
from hcore_io.client import Client
from tests.hcore_io.conftest import SocketBackend

from .client_peers import Hypercorn, run_hypercorn

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def hypercorn(
    tmp_path_factory: pytest.TempPathFactory, tls_ca: trustme.CA
) -> Iterator[Hypercorn]:
    """hypercorn, for the whole module."""
    with run_hypercorn(tmp_path_factory.mktemp("hypercorn"), tls_ca) as server:
        yield server


async def test_http3_when_asked(
    hypercorn: Hypercorn, client_tls_config: ClientTLSConfig, networking: SocketBackend
) -> None:
    async with Client(
        tls_config=client_tls_config, http_versions=("3",), networking=networking
    ) as client:
        base = f"https://127.0.0.1:{hypercorn.quic_port}"
        response = await client.get(f"{base}/")
        assert response.http_version == "3"
        assert response.content == b"hello from hypercorn"
        sizes = [256 * n for n in range(1, 40)]
        async with anyio.create_task_group() as group:
            for size in sizes:
                group.start_soon(client.get, f"{base}/bytes/{size}")
        large = await client.get(f"{base}/bytes/{4 << 20}")
        assert large.content == bytes(range(256)) * (4 << 12)
        assert client.pool.metrics.created == 1


async def test_alt_svc_switches_to_http3(
    hypercorn: Hypercorn, client_tls_config: ClientTLSConfig, networking: SocketBackend
) -> None:
    async with Client(tls_config=client_tls_config, networking=networking) as client:
        url = f"https://127.0.0.1:{hypercorn.tls_port}/"
        first = await client.get(url)
        assert first.http_version == "2"
        assert first.get_header(b"alt-svc") is not None
        second = await client.get(url)
        assert second.http_version == "3"
        assert second.content == b"hello from hypercorn"
        versions = {m.http_version for m in client.pool.metrics.connections}
        assert versions == {"2", "3"}
