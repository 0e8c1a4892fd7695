"""The socket backends over loopback: TCP, TLS, timeouts and listener behaviour.

Every test runs on SystemNetworking and EpollNetworking (``networking_class``).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
import trustme
from anyio.abc import ByteStream, Listener, SocketAttribute
from anyio.streams.tls import TLSAttribute
from cryptography.hazmat.primitives import serialization

from hcore import Address, ClientTLSConfig, ServerTLSConfig
from hcore_io import ConnectError, ConnectTimeout, NetworkError

from .conftest import SocketNetworkingClass

pytestmark = pytest.mark.anyio

Handler = Callable[[ByteStream], Awaitable[None]]


def _address(listener: Listener[ByteStream]) -> Address:
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    return address[0], address[1]


def _nodelay(stream: ByteStream) -> bool:
    raw_socket = stream.extra(SocketAttribute.raw_socket)
    return bool(raw_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


async def _echo(stream: ByteStream) -> None:
    async with stream:
        try:
            # Bounded by what the client sends before it closes.
            while True:
                await stream.send(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass


@asynccontextmanager
async def _serving(
    listener: Listener[ByteStream], handler: Handler = _echo
) -> AsyncIterator[Address]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        try:
            yield _address(listener)
        finally:
            await listener.aclose()


@pytest.fixture
def full_backlog() -> Iterator[Address]:
    """A loopback address whose accept queue is full: connecting hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    address = server.getsockname()
    filler = socket.socket()
    filler.connect(address)
    try:
        yield address[0], address[1]
    finally:
        filler.close()
        server.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_tcp_echo(host: str, networking_class: SocketNetworkingClass) -> None:
    net = networking_class()
    server_nodelay: list[bool] = []

    async def handler(stream: ByteStream) -> None:
        server_nodelay.append(_nodelay(stream))
        await _echo(stream)

    with anyio.fail_after(10):
        listener = await net.listen_tcp((host, 0))
        async with _serving(listener, handler) as address:
            assert address[0] == host
            async with await net.connect_tcp(address, timeout=5) as client:
                assert client.extra(SocketAttribute.remote_address) == address
                assert _nodelay(client)
                await client.send(b"hello")
                assert await client.receive() == b"hello"
                await client.send_eof()
                with pytest.raises(anyio.EndOfStream):
                    await client.receive()
    assert server_nodelay == [True]


async def test_tcp_connect_by_name(networking_class: SocketNetworkingClass) -> None:
    net = networking_class()
    with anyio.fail_after(10):
        listener = await net.listen_tcp(("127.0.0.1", 0))
        async with _serving(listener) as address:
            async with await net.connect_tcp(("localhost", address[1])) as client:
                await client.send(b"x")
                assert await client.receive() == b"x"


async def test_refused_connection(networking_class: SocketNetworkingClass) -> None:
    net = networking_class()
    listener = await net.listen_tcp(("127.0.0.1", 0))
    address = _address(listener)
    await listener.aclose()
    with anyio.fail_after(10), pytest.raises(ConnectError):
        await net.connect_tcp(address)


async def test_unresolvable_name(networking_class: SocketNetworkingClass) -> None:
    net = networking_class()
    with anyio.fail_after(10), pytest.raises(ConnectError):
        await net.connect_tcp(("name.invalid", 80))


async def test_connect_timeout(
    full_backlog: Address, networking_class: SocketNetworkingClass
) -> None:
    net = networking_class()
    with anyio.fail_after(10), pytest.raises(ConnectTimeout):
        await net.connect_tcp(full_backlog, timeout=0.2)


async def test_address_in_use(networking_class: SocketNetworkingClass) -> None:
    net = networking_class()
    listener = await net.listen_tcp(("127.0.0.1", 0))
    async with listener:
        with pytest.raises(NetworkError):
            await net.listen_tcp(_address(listener))


async def test_serve_returns_when_closed(
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()
    listener = await net.listen_tcp(("127.0.0.1", 0))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, _echo)
            await anyio.wait_all_tasks_blocked()
            await listener.aclose()


@pytest.mark.parametrize(
    ("server_alpn", "client_alpn", "selected"),
    [
        (("h2", "http/1.1"), ("http/1.1", "h2"), "h2"),
        (("http/1.1", "h2"), ("h2", "http/1.1"), "http/1.1"),
        (("h2",), ("http/1.1",), None),
        ((), ("h2",), None),
    ],
)
async def test_tls_alpn(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    server_alpn: tuple[str, ...],
    client_alpn: tuple[str, ...],
    selected: str | None,
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()
    server_seen: list[str | None] = []

    async def handler(stream: ByteStream) -> None:
        server_seen.append(stream.extra(TLSAttribute.alpn_protocol))
        await _echo(stream)

    with anyio.fail_after(10):
        listener = await net.listen_tcp_tls(
            ("127.0.0.1", 0), tls_config=server_tls_config, alpn_protocols=server_alpn
        )
        async with _serving(listener, handler) as address:
            client = await net.connect_tcp_tls(
                address,
                server_name="localhost",
                tls_config=client_tls_config,
                alpn_protocols=client_alpn,
                timeout=5,
            )
            async with client:
                assert client.extra(TLSAttribute.alpn_protocol) == selected
                assert client.extra(TLSAttribute.tls_version) == "TLSv1.3"
                assert client.extra(SocketAttribute.remote_address) == address
                await client.send(b"secret")
                assert await client.receive() == b"secret"
    assert server_seen == [selected]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_tls_verifies_ip_address_by_default(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    host: str,
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()
    with anyio.fail_after(10):
        listener = await net.listen_tcp_tls((host, 0), tls_config=server_tls_config)
        async with _serving(listener) as address:
            client = await net.connect_tcp_tls(address, tls_config=client_tls_config)
            async with client:
                await client.send(b"x")
                assert await client.receive() == b"x"


@pytest.mark.parametrize(
    ("server_name", "trusted"),
    [("localhost", False), ("wrong.example", True)],
)
async def test_tls_verification_failure(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    server_name: str,
    trusted: bool,
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()
    # Untrusted: the system store does not know the test CA.
    config = client_tls_config if trusted else ClientTLSConfig()
    with anyio.fail_after(10):
        listener = await net.listen_tcp_tls(
            ("127.0.0.1", 0), tls_config=server_tls_config
        )
        async with _serving(listener) as address:
            with pytest.raises(ConnectError) as info:
                await net.connect_tcp_tls(
                    address, server_name=server_name, tls_config=config
                )
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


async def test_tls_insecure_mode(
    server_tls_config: ServerTLSConfig, networking_class: SocketNetworkingClass
) -> None:
    net = networking_class()
    with anyio.fail_after(10):
        listener = await net.listen_tcp_tls(
            ("127.0.0.1", 0), tls_config=server_tls_config
        )
        async with _serving(listener) as address:
            client = await net.connect_tcp_tls(
                address,
                server_name="wrong.example",
                tls_config=ClientTLSConfig(insecure=True),
            )
            async with client:
                await client.send(b"x")
                assert await client.receive() == b"x"


async def test_tls_client_certificate(
    tls_ca: trustme.CA,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    client_cert_paths: tuple[str, str],
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()
    server_config = replace(
        server_tls_config,
        cadata=tls_ca.cert_pem.bytes().decode(),
        require_client_certificate=True,
    )
    certfile, keyfile = client_cert_paths
    peers: list[object] = []

    async def handler(stream: ByteStream) -> None:
        peers.append(stream.extra(TLSAttribute.peer_certificate))
        await _echo(stream)

    with anyio.fail_after(10):
        listener = await net.listen_tcp_tls(("127.0.0.1", 0), tls_config=server_config)
        async with _serving(listener, handler) as address:
            with_cert = replace(client_tls_config, certfile=certfile, keyfile=keyfile)
            async with await net.connect_tcp_tls(address, tls_config=with_cert) as c:
                await c.send(b"x")
                assert await c.receive() == b"x"
            # TLS 1.3: the server's refusal arrives after the client's handshake.
            client = await net.connect_tcp_tls(address, tls_config=client_tls_config)
            async with client:
                with pytest.raises((anyio.BrokenResourceError, anyio.EndOfStream)):
                    await client.send(b"x")
                    await client.receive()
    assert len(peers) == 1
    assert peers[0]


async def test_tls_minimum_version_and_ciphers(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()
    server_config = replace(
        server_tls_config, minimum_version="TLSv1.2", ciphers="ECDHE+AESGCM"
    )
    client_config = replace(
        client_tls_config, minimum_version="TLSv1.3", ciphers="ECDHE+AESGCM"
    )
    with anyio.fail_after(10):
        listener = await net.listen_tcp_tls(("127.0.0.1", 0), tls_config=server_config)
        async with _serving(listener) as address:
            async with await net.connect_tcp_tls(
                address, tls_config=client_config
            ) as client:
                assert client.extra(TLSAttribute.tls_version) == "TLSv1.3"
            with pytest.raises(ValueError, match="TLS version"):
                await net.connect_tcp_tls(
                    address,
                    tls_config=replace(client_config, minimum_version="SSLv3"),
                )


async def test_tls_handshake_timeout_against_silent_server(
    client_tls_config: ClientTLSConfig,
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()

    async def silent(stream: ByteStream) -> None:
        # Reads the ClientHello and never answers, until the client leaves.
        async with stream:
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                # Bounded: the client gives up after its timeout.
                while True:
                    await stream.receive()

    with anyio.fail_after(10):
        listener = await net.listen_tcp(("127.0.0.1", 0))
        async with _serving(listener, silent) as address:
            with pytest.raises(ConnectTimeout):
                await net.connect_tcp_tls(
                    address, tls_config=client_tls_config, timeout=0.2
                )


async def test_tls_against_plain_server_fails(
    client_tls_config: ClientTLSConfig,
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()

    async def rude(stream: ByteStream) -> None:
        async with stream:
            await stream.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    with anyio.fail_after(10):
        listener = await net.listen_tcp(("127.0.0.1", 0))
        async with _serving(listener, rude) as address:
            with pytest.raises(ConnectError):
                await net.connect_tcp_tls(address, tls_config=client_tls_config)


async def test_tls_listener_survives_silent_and_bad_clients(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class(tls_handshake_timeout=0.3)
    with anyio.fail_after(10):
        listener = await net.listen_tcp_tls(
            ("127.0.0.1", 0), tls_config=server_tls_config
        )
        async with _serving(listener) as address:
            # A client that connects and says nothing holds only its own task...
            silent = await net.connect_tcp(address)
            # ...and one that speaks garbage is dropped.
            garbage = await net.connect_tcp(address)
            await garbage.send(b"GET / HTTP/1.1\r\n\r\n")
            client = await net.connect_tcp_tls(address, tls_config=client_tls_config)
            async with client:
                await client.send(b"still served")
                assert await client.receive() == b"still served"
            # The silent client is dropped once its handshake time is up.
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await silent.receive()
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                # Bounded: the server closes after its TLS alert, if any.
                for _ in range(10):
                    await garbage.receive()
            await silent.aclose()
            await garbage.aclose()


async def test_bad_tls_files(networking_class: SocketNetworkingClass) -> None:
    net = networking_class()
    missing = ServerTLSConfig(certfile="/nonexistent/cert.pem")
    with pytest.raises(NetworkError):
        await net.listen_tcp_tls(("127.0.0.1", 0), tls_config=missing)
    with pytest.raises(ValueError, match="certfile"):
        await net.listen_tcp_tls(("127.0.0.1", 0), tls_config=ServerTLSConfig())
    with pytest.raises(ConnectError):
        await net.connect_tcp_tls(
            ("127.0.0.1", 1), tls_config=ClientTLSConfig(cafile="/nonexistent.pem")
        )


async def test_pending_handshakes_end_with_the_listener(
    server_tls_config: ServerTLSConfig,
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()
    with anyio.fail_after(10):
        listener = await net.listen_tcp_tls(
            ("127.0.0.1", 0), tls_config=server_tls_config
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, _echo)
            silent = await net.connect_tcp(_address(listener))
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        await listener.aclose()
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await silent.receive()
        await silent.aclose()


async def test_client_contexts_are_reused(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()
    with anyio.fail_after(10):
        listener = await net.listen_tcp_tls(
            ("127.0.0.1", 0), tls_config=server_tls_config
        )
        async with _serving(listener) as address:
            contexts = []
            for _ in range(2):
                client = await net.connect_tcp_tls(
                    address, tls_config=client_tls_config
                )
                async with client:
                    ssl_object = client.extra(TLSAttribute.ssl_object)
                    contexts.append(ssl_object.context)
    assert contexts[0] is contexts[1]


async def test_tls_encrypted_key_cadata_and_sni(
    tls_ca: trustme.CA, tmp_path: Path, networking_class: SocketNetworkingClass
) -> None:
    cert = tls_ca.issue_cert("server.test")
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
    key_path = tmp_path / "key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    chain_path = tmp_path / "chain.pem"
    chain_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    server_config = ServerTLSConfig(
        certfile=str(chain_path), keyfile=str(key_path), keypassword="secret"
    )
    client_config = ClientTLSConfig(cadata=tls_ca.cert_pem.bytes().decode())
    net = networking_class()
    with anyio.fail_after(10):
        listener = await net.listen_tcp_tls(("127.0.0.1", 0), tls_config=server_config)
        async with _serving(listener) as address:
            client = await net.connect_tcp_tls(
                address, server_name="server.test", tls_config=client_config
            )
            async with client:
                ssl_object = client.extra(TLSAttribute.ssl_object)
                assert ssl_object.server_hostname == "server.test"
                await client.send(b"x")
                assert await client.receive() == b"x"
        wrong_password = replace(server_config, keypassword="wrong")
        with pytest.raises(NetworkError):
            await net.listen_tcp_tls(("127.0.0.1", 0), tls_config=wrong_password)


async def test_tls_optional_client_certificate(
    tls_ca: trustme.CA,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    client_cert_paths: tuple[str, str],
    networking_class: SocketNetworkingClass,
) -> None:
    net = networking_class()
    ca_path = client_tls_config.cafile
    server_config = replace(server_tls_config, cafile=ca_path)
    certfile, keyfile = client_cert_paths
    peers: list[object] = []

    async def handler(stream: ByteStream) -> None:
        peers.append(stream.extra(TLSAttribute.peer_certificate))
        await _echo(stream)

    with anyio.fail_after(10):
        listener = await net.listen_tcp_tls(("127.0.0.1", 0), tls_config=server_config)
        async with _serving(listener, handler) as address:
            with_cert = replace(client_tls_config, certfile=certfile, keyfile=keyfile)
            for config in (client_tls_config, with_cert):
                async with await net.connect_tcp_tls(address, tls_config=config) as c:
                    await c.send(b"x")
                    assert await c.receive() == b"x"
    assert peers[0] is None
    assert peers[1]
