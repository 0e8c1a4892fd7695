"""A TLS receive hands on every record already read, not one per call.

AnyIO's ``TLSStream`` decrypts one record (16 KiB at most) per receive;
:class:`TLSByteStream` goes on through the records the same socket read
brought, up to ``max_bytes``, and leaves a bad record for the next receive.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest
import trustme
from anyio.streams.tls import TLSStream

from hcore_io.networking._memory_streams import MemoryByteStream, make_pipe_pair
from hcore_io.networking._tls import TLSByteStream

pytestmark = pytest.mark.anyio

RECORD = 16384


@pytest.fixture
def tls_contexts() -> Iterator[tuple[ssl.SSLContext, ssl.SSLContext]]:
    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    yield server, client


@asynccontextmanager
async def _connected(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> AsyncIterator[tuple[TLSByteStream, TLSStream, MemoryByteStream]]:
    """Our client stream, the server's TLS stream and the server's raw pipe."""
    server_context, client_context = contexts
    client_pipe, server_pipe = make_pipe_pair(
        ("127.0.0.1", 1), ("127.0.0.1", 2), capacity=1 << 20
    )
    servers: list[TLSStream] = []

    async def server_handshake() -> None:
        servers.append(
            await TLSStream.wrap(
                server_pipe,
                server_side=True,
                ssl_context=server_context,
                standard_compatible=False,
            )
        )

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(server_handshake)
            client = TLSByteStream(
                await TLSStream.wrap(
                    client_pipe,
                    hostname="localhost",
                    ssl_context=client_context,
                    standard_compatible=False,
                )
            )
    try:
        yield client, servers[0], server_pipe
    finally:
        await client.aclose()
        await servers[0].aclose()


async def test_records_already_read_come_in_one_receive(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async with _connected(tls_contexts) as (client, server, _):
        sent = bytes(range(256)) * (4 * RECORD // 256)
        with anyio.fail_after(10):
            await server.send(sent)
            first = await client.receive(1 << 20)
            # The pipe hands over 64 KiB per read: three whole records and
            # part of the fourth, all three decrypted at once.
            assert len(first) >= 3 * RECORD
            received = first
            # Bounded: each receive returns at least one byte.
            while len(received) < len(sent):
                received += await client.receive(1 << 20)
        assert received == sent


async def test_a_receive_returns_no_more_than_asked(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async with _connected(tls_contexts) as (client, server, _):
        with anyio.fail_after(10):
            for index in range(6):
                await server.send(b"%d" % index * 1000)
            pieces = [await client.receive(2500) for _ in range(3)]
            assert [len(piece) for piece in pieces] == [2500, 2500, 1000]
            assert b"".join(pieces) == b"".join(b"%d" % i * 1000 for i in range(6))


async def test_a_bad_record_after_good_ones_fails_the_next_receive(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async with _connected(tls_contexts) as (client, server, server_pipe):
        with anyio.fail_after(10):
            await server.send(b"first")
            await server.send(b"second")
            # An application data record that does not decrypt.
            await server_pipe.send(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
            assert await client.receive() == b"firstsecond"
            with pytest.raises(anyio.BrokenResourceError) as info:
                await client.receive()
            assert isinstance(info.value.__cause__, ssl.SSLError)
            with pytest.raises(anyio.BrokenResourceError):
                await client.send(b"after the failure")


async def test_without_anyios_internals_a_receive_is_one_record(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async with _connected(tls_contexts) as (client, server, _):
        client._more = None
        with anyio.fail_after(10):
            await server.send(b"a" * RECORD + b"b" * RECORD)
            assert await client.receive(1 << 20) == b"a" * RECORD
            assert await client.receive(1 << 20) == b"b" * RECORD
