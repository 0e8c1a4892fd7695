"""Openers: ALPN, h2c, QUIC address resolution, errors, default networking.

Every test runs on asyncio and Trio, on both socket backends (but the one
checking that SystemNetworking is the default).
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute

from hcore import ClientTLSConfig, LocalProtocolError, ServerTLSConfig
from hcore.protocols import ALPNHTTPFactory, HTTPOverTCPFactory, HTTPOverTCPProtocol
from hcore.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from hcore_io import ConnectError
from hcore_io.connections import (
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
    PriorKnowledgeHTTPFactory,
)

from .conftest import SocketBackend
from .connection_helpers import App, fetch, pattern

pytestmark = pytest.mark.anyio


def _both() -> PriorKnowledgeHTTPFactory:
    return PriorKnowledgeHTTPFactory(HTTP1ServerFactory(), HTTP2ServerFactory())


@pytest.mark.parametrize(
    ("server_factory", "expected"),
    [
        (_both, "2"),
        (HTTP1ServerFactory, "1.1"),
        (HTTP2ServerFactory, "2"),
    ],
)
async def test_alpn_picks_the_version_the_server_chose(
    server_factory: type[HTTPOverTCPFactory],
    expected: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    net = networking
    listener = await HTTPOverTCPListener.create(
        server_factory(),
        net,
        local_address=("127.0.0.1", 0),
        tls_config=server_tls_config,
    )
    factory = ALPNHTTPFactory([HTTP1ClientFactory(), HTTP2ClientFactory()])
    opener = HTTPOverTCPOpener(factory, networking=net, tls_config=client_tls_config)
    assert opener.factory is factory
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, App())
            connection = await opener(
                listener.local_addresses[0], server_name="localhost"
            )
            async with connection:
                assert connection.http_version == expected
                alpn = connection.extra(TLSAttribute.alpn_protocol)
                assert alpn == ("h2" if expected == "2" else "http/1.1")
                response = await fetch(connection, "GET", "/bytes/10")
                assert response.body == pattern(10)
            await listener.aclose()


@pytest.mark.parametrize("client_factory", [HTTP1ClientFactory, HTTP2ClientFactory])
async def test_plain_tcp_serves_http1_and_h2c_on_one_port(
    client_factory: type[HTTPOverTCPFactory],
    networking: SocketBackend,
) -> None:
    net = networking
    listener = await HTTPOverTCPListener.create(
        _both(), net, local_address=("127.0.0.1", 0)
    )
    opener = HTTPOverTCPOpener(client_factory(), networking=net)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, App())
            async with await opener(
                listener.local_addresses[0], tls=False
            ) as connection:
                response = await fetch(
                    connection, "POST", "/digest", b"h2c or not", scheme="http"
                )
                assert response.status == 200
                expected = "2" if client_factory is HTTP2ClientFactory else "1.1"
                assert connection.http_version == expected
            await listener.aclose()


class _RequiresALPN(HTTPOverTCPFactory):
    """A client factory that refuses connections without an ALPN id."""

    @property
    def alpn_protocols(self) -> Sequence[str]:
        return ("h2",)

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> HTTPOverTCPProtocol:
        if alpn_protocol is None:
            raise LocalProtocolError("the server chose no ALPN protocol")
        return HTTP2ClientFactory()(
            tls_version=tls_version, alpn_protocol=alpn_protocol
        )


async def test_connect_errors(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    net = networking
    opener = HTTPOverTCPOpener(HTTP1ClientFactory(), networking=net)
    # The message is the backend's own ("refused", "attempts failed").
    with pytest.raises(ConnectError, match="cannot connect"):
        await opener(("127.0.0.1", 1), tls=False)
    listener = await HTTPOverTCPListener.create(
        HTTP1ServerFactory(),
        net,
        local_address=("127.0.0.1", 0),
        tls_config=server_tls_config,
    )
    picky = HTTPOverTCPOpener(
        _RequiresALPN(), networking=net, tls_config=client_tls_config
    )
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            # Served: on sockets the TLS handshake runs in the listener.
            group.start_soon(listener.serve, App())
            with pytest.raises(ConnectError, match="no ALPN protocol"):
                await picky(listener.local_addresses[0])
            await listener.aclose()


async def test_quic_opener_resolves_localhost_once(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    net = networking
    listener = await HTTPOverQUICListener.create(
        HTTP3ServerFactory(),
        net,
        local_address=("127.0.0.1", 0),
        tls_config=server_tls_config,
    )
    opener = HTTPOverQUICOpener(
        HTTP3ClientFactory(), networking=net, tls_config=client_tls_config
    )
    assert isinstance(opener.factory, HTTP3ClientFactory)
    port = listener.local_addresses[0][1]
    with pytest.raises(ValueError, match="always uses TLS"):
        await opener(("localhost", port), tls=False)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, App())
            async with await opener(("localhost", port)) as connection:
                assert connection.remote_address == ("127.0.0.1", port)
                response = await fetch(connection, "GET", "/bytes/1000")
                assert response.body == pattern(1000)
            await listener.aclose()


async def test_system_networking_is_the_default(
    server_tls_config: ServerTLSConfig, client_tls_config: ClientTLSConfig
) -> None:
    tcp = await HTTPOverTCPListener.create(
        _both(), local_address=("127.0.0.1", 0), tls_config=server_tls_config
    )
    quic = await HTTPOverQUICListener.create(
        HTTP3ServerFactory(),
        local_address=("127.0.0.1", 0),
        tls_config=server_tls_config,
    )
    tcp_opener = HTTPOverTCPOpener(
        ALPNHTTPFactory([HTTP1ClientFactory(), HTTP2ClientFactory()]),
        tls_config=client_tls_config,
        connect_timeout=5,
    )
    quic_opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=client_tls_config)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(tcp.serve, App())
            group.start_soon(quic.serve, App())
            for opener, listener in ((tcp_opener, tcp), (quic_opener, quic)):
                port = listener.local_addresses[0][1]
                async with await opener(("localhost", port)) as connection:
                    assert connection.extra(SocketAttribute.remote_port) == port
                    response = await fetch(connection, "POST", "/digest", b"real")
                    assert response.status == 200
                    assert connection.http_version in ("2", "3")
            await tcp.aclose()
            await quic.aclose()
