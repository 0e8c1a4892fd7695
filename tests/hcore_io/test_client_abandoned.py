"""A response dropped unread and unclosed does not keep its connection.

Reading a body to its end or closing it gives the connection back at once;
a body the program simply forgets is caught when the garbage collector takes
it (a ``ResourceWarning``), and the next request finds the pool slot free.
Every test runs on asyncio and Trio and on both socket backends.
"""

from __future__ import annotations

import gc
import warnings

import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.client import URL, ConnectionPool, Request, Response, Timeouts

from .client_helpers import client_server
from .conftest import SocketBackend

pytestmark = pytest.mark.anyio

# Large enough that the response cannot have ended when its head arrived.
_BIG = "/bytes/4000000"
_TIMEOUTS = Timeouts(connect=10.0, read=10.0, write=10.0, pool=5.0)


async def _forget(pool: ConnectionPool, url: str) -> None:
    """Start a request and drop its response without reading or closing it."""
    response: Response | None = await pool.handle_request(
        Request("GET", URL(url), timeouts=_TIMEOUTS)
    )
    # Plain statements: pytest's rewritten asserts keep what they looked at.
    status = response.status if response else 0
    chunk = await response.stream.read_chunk() if response else None
    assert status == 200 and chunk
    with pytest.warns(ResourceWarning, match="neither read to its end nor closed"):
        response = None
        gc.collect()


@pytest.mark.parametrize("tls", [False, True], ids=["http1", "http2"])
async def test_forgotten_response_frees_its_connection(
    tls: bool,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with client_server(networking, server_tls_config) as server:
        pool = ConnectionPool(
            networking,
            tls_config=client_tls_config,
            http_versions=("1.1", "2"),
            max_connections=1,
            max_connections_per_host=1,
        )
        async with pool:
            await _forget(pool, server.url(_BIG, tls=tls))
            # The only slot is free again: without the finalizer this waits
            # for the pool timeout and fails.
            again = await pool.handle_request(
                Request("GET", URL(server.url("/ok", tls=tls)), timeouts=_TIMEOUTS)
            )
            assert await again.aread() == b"ok"
            assert again.http_version == ("2" if tls else "1.1")
            metrics = pool.metrics
            assert metrics.requests == 2
            assert sum(c.errors for c in metrics.connections) <= 1
        if tls:
            # HTTP/2: the forgotten stream was reset, its connection reused.
            assert server.app.connections == {"tls": 1}
        else:
            # HTTP/1.1: a half-read connection cannot be reused; a new one opens.
            assert server.app.connections == {"tcp": 2}


async def test_read_or_closed_responses_release_at_once(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with client_server(networking, server_tls_config) as server:
        pool = ConnectionPool(
            networking,
            tls_config=client_tls_config,
            http_versions=("1.1",),
            max_connections=1,
        )
        async with pool:
            read = await pool.handle_request(Request("GET", URL(server.url(_BIG))))
            assert len(await read.aread()) == 4_000_000
            assert pool.metrics.connections[0].state.value == "idle"
            closed = await pool.handle_request(Request("GET", URL(server.url(_BIG))))
            await closed.aclose()
            del read, closed
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                gc.collect()
            assert not [w for w in caught if "nor closed" in str(w.message)]
            last = await pool.handle_request(
                Request("GET", URL(server.url("/ok")), timeouts=_TIMEOUTS)
            )
            assert await last.aread() == b"ok"
        # The fully read one kept its connection; the closed one lost it.
        assert server.app.connections == {"tcp": 2}
