"""Your own networking, plugged into an opener: log every connection, count its bytes.

:class:`LoggingNetworking` wraps another backend and writes down each
connection it opens: TCP, TLS (with the ALPN id the server chose) or UDP,
and where to.  It builds on :class:`~hcore_io.client.NetworkingWrapper`,
which delegates all of :class:`~hcore_io.networking.ClientNetworking` to
the wrapped backend, so it overrides only what it changes.  Wrappers
stack: here it wraps the library's
:class:`~hcore_io.client.CountingNetworking`, which counts the bytes of
every stream into a :class:`~hcore_io.client.ConnectionMetrics`.  Openers
take any :class:`~hcore_io.networking.ClientNetworking`, so nothing else
changes: the same HTTP/1.1, HTTP/2 and HTTP/3 code runs on top, and TLS
details (the ALPN id) pass through the wrappers::

    python examples/custom_networking.py --self-test

The self-test starts a server on 127.0.0.1, fetches one page over each HTTP
version through a :class:`LoggingNetworking`, and prints the log and the
counts.  ``--networking epoll`` runs it on Linux's epoll instead of AnyIO's
sockets.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import anyio
from anyio.abc import ByteStream
from anyio.streams.tls import TLSAttribute

from hcore import Address, ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived
from hcore.protocols import ALPNHTTPFactory, HTTPOverTCPFactory
from hcore.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from hcore_io.client import ConnectionMetrics, CountingNetworking, NetworkingWrapper
from hcore_io.connections import (
    HTTPConnection,
    HTTPOpener,
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
    PriorKnowledgeHTTPFactory,
)
from hcore_io.networking import (
    ClientNetworking,
    DatagramStream,
    EpollNetworking,
    SystemNetworking,
)

#: The socket backends ``--networking`` chooses from.
NETWORKING = {"system": SystemNetworking, "epoll": EpollNetworking}


class LoggingNetworking(NetworkingWrapper):
    """Client networking that logs every connection it opens.

    :param inner: the networking that really connects.
    """

    def __init__(self, inner: ClientNetworking | None = None) -> None:
        super().__init__(inner or SystemNetworking())
        #: One line per connection opened, in order.
        self.log: list[str] = []

    async def connect_tcp(
        self,
        address: Address,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        stream = await super().connect_tcp(address, timeout=timeout)
        self.log.append(f"TCP to {address[0]}:{address[1]}")
        return stream

    async def connect_tcp_tls(
        self,
        address: Address,
        *,
        server_name: str | None = None,
        tls_config: ClientTLSConfig = ClientTLSConfig(),  # noqa: B008
        alpn_protocols: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109 (the interface's shape)
    ) -> ByteStream:
        stream = await super().connect_tcp_tls(
            address,
            server_name=server_name,
            tls_config=tls_config,
            alpn_protocols=alpn_protocols,
            timeout=timeout,
        )
        # The TLS details of the wrapped stream stay readable through the
        # wrappers: the opener picks the HTTP version from the same ALPN id.
        alpn = stream.extra(TLSAttribute.alpn_protocol, None)
        self.log.append(f"TLS to {address[0]}:{address[1]} (ALPN {alpn})")
        return stream

    async def connect_udp(self, address: Address) -> DatagramStream:
        stream = await super().connect_udp(address)
        self.log.append(f"UDP to {address[0]}:{address[1]}")
        return stream


async def self_test(networking: str = "system") -> str:
    """Fetch 100 KB over HTTP/1.1, HTTP/2 and HTTP/3 through counting networking.

    :param networking: the socket backend under the wrappers, and the
        server's: a key of :data:`NETWORKING`.
    :return: one line per version.
    """
    backend = NETWORKING[networking]()
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
        both, backend, local_address=("127.0.0.1", 0), tls_config=server_tls
    )
    quic = await HTTPOverQUICListener.create(
        HTTP3ServerFactory(),
        backend,
        local_address=("127.0.0.1", 0),
        tls_config=server_tls,
    )
    lines = []
    async with anyio.create_task_group() as group:
        group.start_soon(tcp.serve, hundred_kb)
        group.start_soon(quic.serve, hundred_kb)
        cases: list[tuple[str, HTTPOpener, LoggingNetworking, int]] = []
        metrics: dict[str, ConnectionMetrics] = {}

        def wrapped(name: str) -> LoggingNetworking:
            # Logged on top, counted below: the wrappers stack.
            metrics[name] = ConnectionMetrics(origin=name)
            return LoggingNetworking(CountingNetworking(backend, metrics[name]))

        versions: list[tuple[str, HTTPOverTCPFactory]] = [
            ("HTTP/1.1", HTTP1ClientFactory()),
            ("HTTP/2", HTTP2ClientFactory()),
        ]
        for name, factory in versions:
            net = wrapped(name)
            tcp_opener = HTTPOverTCPOpener(
                ALPNHTTPFactory([factory]), networking=net, tls_config=client_tls
            )
            cases.append((name, tcp_opener, net, tcp.local_addresses[0][1]))
        net = wrapped("HTTP/3")
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
            counted = metrics[name]
            # HTTP framing (and, on HTTP/3, QUIC and its TLS) adds to the body.
            assert counted.bytes_received > len(body) == 100_000
            lines.append(
                f"{name}: body {len(body)} bytes; counted "
                f"{counted.bytes_sent} bytes sent, {counted.bytes_received} received; "
                + "; ".join(net.log)
            )
        await tcp.aclose()
        await quic.aclose()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--networking", choices=tuple(NETWORKING), default="system")
    parser.add_argument("--self-test", action="store_true", required=True)
    args = parser.parse_args(argv)
    print(anyio.run(self_test, args.networking, backend=args.backend), end="")


if __name__ == "__main__":
    main()
