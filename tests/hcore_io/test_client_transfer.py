"""A 256 MiB download streams through the client in bounded memory.

The size keeps CI time sane (``bench/`` downloads 1 GiB).  Memory is the
peak traced by ``tracemalloc`` while the body streams: it must stay a small
multiple of the flow-control windows and queue bounds, far below the body.
Runs on asyncio and Trio, over HTTP/1.1 and HTTP/2, in memory.
"""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.client import Client
from hcore_io.networking import MemoryNetworking

from .client_helpers import client_server, pattern

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SIZE = 256 << 20
PEAK_LIMIT = 48 << 20


@pytest.mark.parametrize("tls", [False, True], ids=["http1", "http2"])
async def test_large_download_in_bounded_memory(
    tls: bool, server_tls_config: ServerTLSConfig, client_tls_config: ClientTLSConfig
) -> None:
    networking = MemoryNetworking()
    expected = hashlib.sha256()
    for offset in range(0, SIZE, 1 << 20):
        expected.update(pattern(min(1 << 20, SIZE - offset)))
    received = hashlib.sha256()
    size = 0
    async with (
        client_server(networking, server_tls_config) as server,
        Client(networking=networking, tls_config=client_tls_config) as client,
    ):
        tracemalloc.start()
        try:
            async with client.stream("GET", server.url(f"/bytes/{SIZE}", tls=tls)) as r:
                assert r.http_version == ("2" if tls else "1.1")
                async for chunk in r.stream:
                    size += len(chunk)
                    received.update(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert size == SIZE
    assert received.digest() == expected.digest()
    assert peak < PEAK_LIMIT, f"peak {peak >> 20} MiB"
