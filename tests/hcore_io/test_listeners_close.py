"""Closing listeners gracefully, SO_REUSEPORT, and TLS over any byte stream.

- A closed QUIC listener stops accepting but keeps serving the connections
  it has, so that they can finish (GOAWAY, last responses) before its
  socket closes.
- ``reuse_port=True`` lets two listeners share a port, on both socket
  backends, TCP and QUIC.
- The server's shutdown relies on that for HTTP/3.
- :func:`hcore_io.networking.start_tls` runs a client handshake over a
  stream a backend did not make TLS itself.

Every test runs on asyncio and Trio, and on both socket backends.
"""

from __future__ import annotations

import anyio
import pytest
from anyio.abc import SocketAttribute
from anyio.streams.memory import MemoryObjectSendStream
from anyio.streams.tls import TLSAttribute

from hcore import ClientTLSConfig, Datagram, ServerTLSConfig
from hcore.events import HeadersReceived
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from hcore_io import ConnectError, NetworkError
from hcore_io.connections import (
    HTTPConnection,
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
)
from hcore_io.networking import QUICStream, start_tls
from hcore_io.networking._datagrams import UDPSocketStream
from hcore_io.server import ASGIServer, Receive, Scope, Send

from .conftest import SocketBackend, SocketNetworkingClass
from .quic_packets import QUIC_V1, initial_datagram, short_header_datagram
from .server_apps import app
from .server_helpers import Response, fetch, read_response, request_headers

pytestmark = pytest.mark.anyio

QUIET = 0.2  # how long to wait to be sure nothing arrives


def _port(provider: anyio.TypedAttributeProvider) -> int:
    address = provider.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    return int(address[1])


async def test_closed_quic_listener_keeps_routing_to_its_connections(
    networking: SocketBackend,
) -> None:
    listener = await networking.listen_quic(
        ("127.0.0.1", 0), quic_connection_id_length=8, quic_supported_versions=[QUIC_V1]
    )
    target = ("127.0.0.1", _port(listener))
    send, receive = anyio.create_memory_object_stream[QUICStream](4)
    served = anyio.Event()

    async def serve(handler: MemoryObjectSendStream[QUICStream]) -> None:
        await listener.serve(handler.send)
        served.set()

    with anyio.fail_after(10):
        client = UDPSocketStream(await anyio.create_udp_socket(local_host="127.0.0.1"))
        async with client, send, receive, anyio.create_task_group() as group:
            group.start_soon(serve, send)
            await client.send(Datagram(initial_datagram(b"A" * 8), target))
            stream = await receive.receive()
            assert (await stream.receive()).data == initial_datagram(b"A" * 8)

            await listener.aclose()
            # The connection accepted goes on, both ways...
            await client.send(Datagram(short_header_datagram(b"A" * 8), target))
            assert (await stream.receive()).data == short_header_datagram(b"A" * 8)
            client_address = client.extra(SocketAttribute.local_address)
            assert isinstance(client_address, tuple)
            await stream.send(Datagram(b"still here", client_address))
            assert (await client.receive()).data == b"still here"
            # ... while a new connection is no longer accepted.
            await client.send(Datagram(initial_datagram(b"B" * 8), target))
            with anyio.move_on_after(QUIET) as quiet:
                await receive.receive()
            assert quiet.cancelled_caught
            assert not served.is_set()

            # The last connection's end closes the socket; serve() returns.
            await stream.aclose()
            await served.wait()


async def test_closed_quic_listener_lets_a_request_finish_after_goaway(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    listener = await HTTPOverQUICListener.create(
        HTTP3ServerFactory(),
        networking,
        local_address=("127.0.0.1", 0),
        tls_config=server_tls_config,
    )
    (address,) = listener.local_addresses
    accepted: list[HTTPConnection] = []
    arrived = anyio.Event()
    release = anyio.Event()
    served = anyio.Event()

    async def handler(connection: HTTPConnection) -> None:
        accepted.append(connection)
        stream = await connection.accept_stream()
        assert stream is not None
        async with stream:
            assert isinstance(await stream.receive_event(), HeadersReceived)
            arrived.set()
            await release.wait()
            await stream.send_headers(((b":status", b"200"),))
            await stream.send_data(b"finished after close", end_stream=True)
        # Bounded: after the graceful close no new stream comes.
        while await connection.accept_stream() is not None:
            pass

    async def serve() -> None:
        await listener.serve(handler)
        served.set()

    opener = HTTPOverQUICOpener(
        HTTP3ClientFactory(), networking=networking, tls_config=client_tls_config
    )
    with anyio.fail_after(15):
        async with anyio.create_task_group() as group:
            group.start_soon(serve)
            async with await opener(address, server_name="localhost") as client:
                responses: list[Response] = []

                async def fetch() -> None:
                    stream = await client.open_stream(
                        request_headers("GET", "/"), end_stream=True
                    )
                    async with stream:
                        responses.append(await read_response(stream))

                async with anyio.create_task_group() as fetching:
                    # The fetching task reads, which completes the handshake.
                    fetching.start_soon(fetch)
                    await arrived.wait()
                    # A graceful shutdown: stop accepting, then GOAWAY.
                    await listener.aclose()
                    await accepted[0].close_gracefully()
                    assert not served.is_set()
                    release.set()
                assert responses[0].status == 200
                assert responses[0].body == b"finished after close"
                assert not client.is_available()
            # The connection's end closed the socket: serve() returned.
            await served.wait()


@pytest.mark.parametrize("kind", ["tcp", "quic"])
async def test_reuse_port_lets_two_listeners_share_a_port(
    kind: str, networking_class: SocketNetworkingClass
) -> None:
    shared = networking_class(reuse_port=True)
    assert shared.reuse_port

    async def listen(net: SocketBackend, port: int) -> anyio.abc.Listener[object]:
        if kind == "tcp":
            return await net.listen_tcp(("127.0.0.1", port))
        return await net.listen_quic(
            ("127.0.0.1", port),
            quic_connection_id_length=8,
            quic_supported_versions=[QUIC_V1],
        )

    with anyio.fail_after(10):
        first = await listen(shared, 0)
        async with first:
            port = _port(first)
            second = await listen(shared, port)
            async with second:
                assert _port(second) == port
            # Without SO_REUSEPORT (on either side) the port is taken.
            with pytest.raises(NetworkError):
                await listen(networking_class(), port)
        async with await listen(networking_class(), 0) as plain:
            with pytest.raises(NetworkError):
                await listen(shared, _port(plain))


async def test_start_tls_over_a_plain_stream(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    listener = await networking.listen_tcp_tls(
        ("127.0.0.1", 0), tls_config=server_tls_config, alpn_protocols=["h2"]
    )

    async def echo(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            try:
                await stream.send(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    with anyio.fail_after(10):
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, echo)
            address = ("127.0.0.1", _port(listener))
            raw = await networking.connect_tcp(address)
            tls = await start_tls(
                raw,
                server_name="localhost",
                tls_config=client_tls_config,
                alpn_protocols=["h2"],
            )
            async with tls:
                assert tls.extra(TLSAttribute.alpn_protocol) == "h2"
                await tls.send(b"ping")
                assert await tls.receive() == b"ping"
            # A server it does not trust: ConnectError, and the stream closed.
            raw = await networking.connect_tcp(address)
            with pytest.raises(ConnectError):
                await start_tls(raw, server_name="localhost")
            with pytest.raises(anyio.ClosedResourceError):
                await raw.send(b"x")
            group.cancel_scope.cancel()


async def test_server_shutdown_lets_http3_requests_finish_after_goaway(
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    arrived = anyio.Event()

    async def signalling_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            arrived.set()
        await app(scope, receive, send)

    server = ASGIServer(
        signalling_app, tls_config=server_tls_config, networking=networking
    )
    opener = HTTPOverQUICOpener(
        HTTP3ClientFactory(), networking=networking, tls_config=client_tls_config
    )
    responses: list[Response] = []
    with anyio.fail_after(15):
        async with anyio.create_task_group() as group:
            (endpoint,) = await group.start(server.serve, ["https://127.0.0.1:0"])
            address = ("127.0.0.1", endpoint.port)
            async with await opener(address, server_name="localhost") as client:

                async def slow() -> None:
                    responses.append(await fetch(client, "GET", "/slow/0.5"))

                async with anyio.create_task_group() as fetching:
                    fetching.start_soon(slow)
                    await arrived.wait()
                    await server.shutdown(timeout=5)
                assert not client.is_available()
    assert responses[0].status == 200
    assert responses[0].body == b"slow done"
