"""A TLS receive hands on every record already read, not one per call.

AnyIO's ``TLSStream`` decrypts one record (16 KiB at most) per receive;
:class:`TLSByteStream` goes on through the records the same socket read
brought, up to ``max_bytes``, and leaves a bad record for the next receive.
"""

from __future__ import annotations

import ssl

import anyio
import pytest

from .tls_pipes import tls_over_pipe

pytestmark = pytest.mark.anyio

RECORD = 16384


async def test_records_already_read_come_in_one_receive(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async with tls_over_pipe(tls_contexts, capacity=1 << 20) as (client, server, _):
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
    async with tls_over_pipe(tls_contexts, capacity=1 << 20) as (client, server, _):
        with anyio.fail_after(10):
            for index in range(6):
                await server.send(b"%d" % index * 1000)
            pieces = [await client.receive(2500) for _ in range(3)]
            assert [len(piece) for piece in pieces] == [2500, 2500, 1000]
            assert b"".join(pieces) == b"".join(b"%d" % i * 1000 for i in range(6))


async def test_a_bad_record_after_good_ones_fails_the_next_receive(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async with tls_over_pipe(tls_contexts, capacity=1 << 20) as (
        client,
        server,
        server_pipe,
    ):
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
    async with tls_over_pipe(tls_contexts, capacity=1 << 20) as (client, server, _):
        client._more = None
        with anyio.fail_after(10):
            await server.send(b"a" * RECORD + b"b" * RECORD)
            assert await client.receive(1 << 20) == b"a" * RECORD
            assert await client.receive(1 << 20) == b"b" * RECORD
