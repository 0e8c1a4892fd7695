"""Our client against real servers: nginx (HTTP/1.1, HTTP/2) and hypercorn (HTTP/3).

Downloads come from nginx's static files and hypercorn's app; uploads go
to nginx, which streams them to an upstream (our own HTTP/1.1 server, so
nginx is the client there), and to hypercorn's app, which digests them.
Bodies of 0 bytes, 13 bytes and 16 MiB, checked by SHA-256, on asyncio
and Trio.  A missing server fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
import trustme

from hcore import ClientTLSConfig
from hcore.protocols import ALPNHTTPFactory, HTTPOverTCPFactory
from hcore.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ClientFactory
from hcore.protocols.http3 import HTTP3ClientFactory
from hcore_io.connections import (
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
)
from tests.hcore_io.conftest import SocketBackend
from tests.hcore_io.connection_helpers import App, digest, fetch, pattern

from .interop_peers import SIZES, Hypercorn, Nginx, run_hypercorn, run_nginx

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def nginx(
    tmp_path_factory: pytest.TempPathFactory, tls_ca: trustme.CA
) -> Iterator[Nginx]:
    with run_nginx(tmp_path_factory.mktemp("nginx"), tls_ca) as peer:
        yield peer


@pytest.fixture(scope="module")
def hypercorn(
    tmp_path_factory: pytest.TempPathFactory, tls_ca: trustme.CA
) -> Iterator[Hypercorn]:
    with run_hypercorn(tmp_path_factory.mktemp("hypercorn"), tls_ca) as peer:
        yield peer


# client factories, TLS, the version nginx must end up speaking
NGINX_MODES: dict[str, tuple[list[HTTPOverTCPFactory], bool, str]] = {
    "http1.1-plain": ([HTTP1ClientFactory()], False, "1.1"),
    "http1.1-tls": ([HTTP1ClientFactory()], True, "1.1"),
    "http2-tls": ([HTTP1ClientFactory(), HTTP2ClientFactory()], True, "2"),
}


@pytest.mark.parametrize("mode", list(NGINX_MODES))
async def test_nginx(
    mode: str,
    nginx: Nginx,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    factories, tls, version = NGINX_MODES[mode]
    opener = HTTPOverTCPOpener(
        ALPNHTTPFactory(factories),
        tls_config=client_tls_config,
        connect_timeout=5,
        networking=networking,
    )
    upstream = await HTTPOverTCPListener.create(
        HTTP1ServerFactory(),
        networking,
        local_address=("127.0.0.1", nginx.upstream_port),
    )
    port = nginx.https_port if tls else nginx.http_port
    scheme = "https" if tls else "http"
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(upstream.serve, App())
            async with await opener(("localhost", port), tls=tls) as connection:
                assert connection.http_version == version
                for size in SIZES:
                    down = await fetch(
                        connection, "GET", f"/bytes/{size}", scheme=scheme
                    )
                    assert down.status == 200
                    assert digest(down.body) == digest(pattern(size))
                    up = await fetch(
                        connection, "POST", "/digest", pattern(size), scheme=scheme
                    )
                    assert up.status == 200
                    assert up.body.decode() == digest(pattern(size))
            await upstream.aclose()


async def test_nginx_many_streams_on_one_http2_connection(
    nginx: Nginx, client_tls_config: ClientTLSConfig, networking: SocketBackend
) -> None:
    opener = HTTPOverTCPOpener(
        HTTP2ClientFactory(), tls_config=client_tls_config, networking=networking
    )
    bodies: dict[int, bytes] = {}

    with anyio.fail_after(30):
        async with await opener(("localhost", nginx.https_port)) as connection:
            assert connection.http_version == "2"

            async def one(index: int) -> None:
                size = SIZES[index % len(SIZES)]
                bodies[index] = (await fetch(connection, "GET", f"/bytes/{size}")).body

            async with anyio.create_task_group() as group:
                for index in range(30):
                    group.start_soon(one, index)
    for index, body in bodies.items():
        assert body == pattern(SIZES[index % len(SIZES)])
    assert len(bodies) == 30


async def test_hypercorn_http3(
    hypercorn: Hypercorn, client_tls_config: ClientTLSConfig, networking: SocketBackend
) -> None:
    opener = HTTPOverQUICOpener(
        HTTP3ClientFactory(), tls_config=client_tls_config, networking=networking
    )
    with anyio.fail_after(120):
        # "localhost": the opener resolves it once for aioquic.
        async with await opener(("localhost", hypercorn.quic_port)) as connection:
            assert connection.http_version == "3"
            for size in SIZES:
                down = await fetch(connection, "GET", f"/bytes/{size}")
                assert down.status == 200
                assert digest(down.body) == digest(pattern(size))
                up = await fetch(connection, "POST", "/digest", pattern(size))
                assert up.body.decode() == f"3 {size} {digest(pattern(size))}"
