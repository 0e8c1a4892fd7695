"""A TLS connection over an in-memory pipe: our client stream and AnyIO's server."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.streams.tls import TLSStream

from hcore_io.networking._memory_streams import MemoryByteStream, make_pipe_pair
from hcore_io.networking._tls import TLSByteStream

__all__ = ("tls_over_pipe",)


@asynccontextmanager
async def tls_over_pipe(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], *, capacity: int
) -> AsyncIterator[tuple[TLSByteStream, TLSStream, MemoryByteStream]]:
    """Handshake over a pipe: yield our client, the server's stream and its pipe.

    :param contexts: the server's and the client's SSL contexts.
    :param capacity: bytes each direction of the pipe holds.
    """
    server_context, client_context = contexts
    client_pipe, server_pipe = make_pipe_pair(
        ("127.0.0.1", 1), ("127.0.0.1", 2), capacity=capacity
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
