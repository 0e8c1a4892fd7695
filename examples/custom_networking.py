"""Your own networking, plugged into an opener: count every byte sent and received.

:class:`CountingNetworking` wraps another backend (the operating system's
sockets by default) and wraps each stream it opens in one that counts
bytes.  Openers take any :class:`~hcore_io.networking.ClientNetworking`,
so nothing else changes: the same HTTP/1.1, HTTP/2 and HTTP/3 code runs on
top, and TLS details (the ALPN id) pass through the wrapper::

    python examples/custom_networking.py --self-test

The self-test starts a server on 127.0.0.1, fetches one page over each HTTP
version through a :class:`CountingNetworking`, and prints the counts.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteStream, UnreliableObjectStream

from hcore import Address, ClientTLSConfig, Datagram, ServerTLSConfig
from hcore.events import DataReceived
from hcore.protocols import ALPNHTTPFactory, HTTPOverTCPFactory
from hcore.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from hcore_io.connections import (
    HTTPConnection,
    HTTPOpener,
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
    PriorKnowledgeHTTPFactory,
)
from hcore_io.networking import ClientNetworking, DatagramStream, SystemNetworking


@dataclass
class Counters:
    """Bytes (or datagram payload bytes) moved through a networking object."""

    sent: int = 0
    received: int = 0


class CountingByteStream(ByteStream):
    """A byte stream that counts what passes through it."""

    def __init__(self, inner: ByteStream, counters: Counters) -> None:
        self._inner = inner
        self._counters = counters

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self._inner.receive(max_bytes)
        self._counters.received += len(data)
        return data

    async def send(self, item: bytes) -> None:
        await self._inner.send(item)
        self._counters.sent += len(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        # Addresses and TLS details of the wrapped stream stay readable.
        return self._inner.extra_attributes


class CountingDatagramStream(UnreliableObjectStream[Datagram]):
    """A datagram stream that counts payload bytes."""

    def __init__(self, inner: DatagramStream, counters: Counters) -> None:
        self._inner = inner
        self._counters = counters

    async def receive(self) -> Datagram:
        datagram = await self._inner.receive()
        self._counters.received += len(datagram.data)
        return datagram

    async def send(self, item: Datagram) -> None:
        await self._inner.send(item)
        self._counters.sent += len(item.data)

    async def aclose(self) -> None:
        await self._inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._inner.extra_attributes


class CountingNetworking(ClientNetworking):
    """Client networking that counts the bytes of every connection it opens.

    :param inner: the networking that really connects.
    """

    def __init__(self, inner: ClientNetworking | None = None) -> None:
        self._inner = inner or SystemNetworking()
        #: Totals over every connection.
        self.counters = Counters()

    async def connect_tcp(
        self,
        address: Address,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        stream = await self._inner.connect_tcp(address, timeout=timeout)
        return CountingByteStream(stream, self.counters)

    async def connect_tcp_tls(
        self,
        address: Address,
        *,
        server_name: str | None = None,
        tls_config: ClientTLSConfig = ClientTLSConfig(),  # noqa: B008
        alpn_protocols: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        # The wrapper sits on the TLS stream: it counts the HTTP bytes.
        stream = await self._inner.connect_tcp_tls(
            address,
            server_name=server_name,
            tls_config=tls_config,
            alpn_protocols=alpn_protocols,
            timeout=timeout,
        )
        return CountingByteStream(stream, self.counters)

    async def connect_udp(self, address: Address) -> DatagramStream:
        stream = await self._inner.connect_udp(address)
        return CountingDatagramStream(stream, self.counters)


async def self_test() -> str:
    """Fetch 100 KB over HTTP/1.1, HTTP/2 and HTTP/3 through counting networking.

    :return: one line per version.
    """
    import trustme

    ca = trustme.CA()
    folder = Path(tempfile.mkdtemp(prefix="hcore-example-"))
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(
        str(folder / "server.pem")
    )
    server_tls = ServerTLSConfig(certfile=str(folder / "server.pem"))
    client_tls = ClientTLSConfig(cadata=ca.cert_pem.bytes().decode())

    async def hundred_kb(connection: HTTPConnection) -> None:
        while (stream := await connection.accept_stream()) is not None:
            async with stream:
                await stream.send_headers([(b":status", b"200")])
                await stream.send_data(b"x" * 100_000, end_stream=True)

    both = PriorKnowledgeHTTPFactory(HTTP1ServerFactory(), HTTP2ServerFactory())
    tcp = await HTTPOverTCPListener.create(
        both, local_address=("127.0.0.1", 0), tls_config=server_tls
    )
    quic = await HTTPOverQUICListener.create(
        HTTP3ServerFactory(), local_address=("127.0.0.1", 0), tls_config=server_tls
    )
    lines = []
    async with anyio.create_task_group() as group:
        group.start_soon(tcp.serve, hundred_kb)
        group.start_soon(quic.serve, hundred_kb)
        cases: list[tuple[str, HTTPOpener, CountingNetworking, int]] = []
        versions: list[tuple[str, HTTPOverTCPFactory]] = [
            ("HTTP/1.1", HTTP1ClientFactory()),
            ("HTTP/2", HTTP2ClientFactory()),
        ]
        for name, factory in versions:
            net = CountingNetworking()
            tcp_opener = HTTPOverTCPOpener(
                ALPNHTTPFactory([factory]), networking=net, tls_config=client_tls
            )
            cases.append((name, tcp_opener, net, tcp.local_addresses[0][1]))
        net = CountingNetworking()
        quic_opener = HTTPOverQUICOpener(
            HTTP3ClientFactory(), networking=net, tls_config=client_tls
        )
        cases.append(("HTTP/3", quic_opener, net, quic.local_addresses[0][1]))
        for name, opener, net, port in cases:
            async with await opener(("localhost", port)) as connection:
                stream = await connection.open_stream(
                    [
                        (b":method", b"GET"),
                        (b":scheme", b"https"),
                        (b":authority", b"localhost"),
                        (b":path", b"/"),
                    ],
                    end_stream=True,
                )
                body = b"".join(
                    [e.data async for e in stream if isinstance(e, DataReceived)]
                )
            # HTTP framing (and, on HTTP/3, QUIC and its TLS) adds to the body.
            assert net.counters.received > len(body) == 100_000
            lines.append(
                f"{name}: body {len(body)} bytes; counted "
                f"{net.counters.sent} bytes sent, {net.counters.received} received"
            )
        await tcp.aclose()
        await quic.aclose()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--self-test", action="store_true", required=True)
    args = parser.parse_args(argv)
    print(anyio.run(self_test, backend=args.backend), end="")


if __name__ == "__main__":
    main()
