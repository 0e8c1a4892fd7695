"""A custom HTTP server in a page: HTTP/1.1, HTTP/2 or HTTP/3, chosen by a flag.

Every request is answered with a line saying what was asked, and the
size and SHA-256 of the request body::

    python examples/custom_server.py --version alpn --port 8443  # HTTP/1.1+2, TLS
    python examples/custom_server.py --version 2 --port 8080     # h2c
    python examples/custom_server.py --version 3 --port 8443     # HTTP/3 (QUIC)
    python examples/custom_server.py --version all --port 8443   # all at once

    curl --http2-prior-knowledge http://127.0.0.1:8080/hello

TLS uses ``--cert``/``--key``, or a throwaway certificate for localhost made
with trustme (``pip install trustme``); its CA is written to ``--ca-out``
if given.  Port 0 picks a free port; the first line printed says which.
``--networking epoll`` moves the bytes with Linux's epoll instead of
AnyIO's sockets.
``--self-test`` starts the server on a free port, fetches one page from it
with hcore's own client, and exits.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import anyio

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived
from hcore.protocols import ALPNHTTPFactory, HTTPOverTCPFactory
from hcore.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from hcore_io import NetworkError
from hcore_io.connections import (
    HTTPConnection,
    HTTPListener,
    HTTPMultiListener,
    HTTPOpener,
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
    HTTPStream,
    PriorKnowledgeHTTPFactory,
)
from hcore_io.networking import EpollNetworking, ServerNetworking, SystemNetworking

VERSIONS = ("1", "2", "3", "alpn", "all")
#: The socket backends ``--networking`` chooses from.
NETWORKING = {"system": SystemNetworking, "epoll": EpollNetworking}


async def handle_connection(connection: HTTPConnection) -> None:
    """Serve one connection: every request in a task of its own."""
    async with anyio.create_task_group() as group:
        # Ends when the client closes the connection.
        while (stream := await connection.accept_stream()) is not None:
            group.start_soon(answer, stream, connection.http_version)


async def answer(stream: HTTPStream, version: str) -> None:
    """Read one request and answer it."""
    async with stream:
        request = await stream.receive_event()
        assert isinstance(request, HeadersReceived)
        fields = dict(request.headers)
        hasher, size = hashlib.sha256(), 0
        if not request.end_stream:
            async for event in stream:  # ends with the request body
                if isinstance(event, DataReceived):
                    hasher.update(event.data)
                    size += len(event.data)
        method, path = fields[b":method"].decode(), fields[b":path"].decode()
        text = (
            f"HTTP/{version} {method} {path}: "
            f"{size} bytes, sha256 {hasher.hexdigest()}\n"
        ).encode()
        await stream.send_headers(
            [
                (b":status", b"200"),
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(text)).encode()),
            ]
        )
        await stream.send_data(text, end_stream=True)


def make_certificate(ca_out: str | None) -> ServerTLSConfig:
    """A throwaway certificate for localhost, 127.0.0.1 and ::1 (needs trustme)."""
    try:
        import trustme
    except ImportError:
        sys.exit("TLS needs --cert/--key, or trustme installed to make a certificate")
    ca = trustme.CA()
    folder = Path(tempfile.mkdtemp(prefix="hcore-example-"))
    ca.issue_cert(
        "localhost", "127.0.0.1", "::1"
    ).private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(ca_out or str(folder / "ca.pem"))
    return ServerTLSConfig(certfile=str(folder / "server.pem"))


async def create_listener(
    version: str,
    host: str,
    port: int,
    tls: ServerTLSConfig | None,
    networking: ServerNetworking,
) -> HTTPListener:
    """Listen for one HTTP version (or, with "all", every one on one port)."""
    both = PriorKnowledgeHTTPFactory(HTTP1ServerFactory(), HTTP2ServerFactory())
    tcp_factory: HTTPOverTCPFactory = {
        "1": HTTP1ServerFactory(),
        "2": HTTP2ServerFactory(),
    }.get(version, both)
    if version == "3":
        assert tls is not None
        return await HTTPOverQUICListener.create(
            HTTP3ServerFactory(), networking, local_address=(host, port), tls_config=tls
        )
    if version == "all":
        assert tls is not None
        # TCP and UDP on the same port number; with port 0 the number the
        # system picks for TCP may be taken for UDP, so try a few.
        for _ in range(10 if port == 0 else 1):
            tcp = await HTTPOverTCPListener.create(
                tcp_factory, networking, local_address=(host, port), tls_config=tls
            )
            try:
                quic = await HTTPOverQUICListener.create(
                    HTTP3ServerFactory(),
                    networking,
                    local_address=(host, tcp.local_addresses[0][1]),
                    tls_config=tls,
                )
            except NetworkError:
                await tcp.aclose()
                continue
            return HTTPMultiListener([tcp, quic])
        raise NetworkError(f"no port free for both TCP and UDP on {host}")
    return await HTTPOverTCPListener.create(
        tcp_factory, networking, local_address=(host, port), tls_config=tls
    )


async def serve(args: argparse.Namespace) -> None:
    tls: ServerTLSConfig | None = None
    if args.cert:
        tls = ServerTLSConfig(certfile=args.cert, keyfile=args.key)
    elif args.version in ("3", "alpn", "all") or args.tls:
        tls = make_certificate(args.ca_out)
    networking = NETWORKING[args.networking]()
    listener = await create_listener(
        args.version, args.host, args.port, tls, networking
    )
    scheme = "https" if tls else "http"
    for host, port in listener.local_addresses:
        print(f"listening on {scheme}://{host}:{port}/ (--version {args.version})")
    sys.stdout.flush()
    async with listener:
        await listener.serve(handle_connection)


async def self_test(version: str = "alpn", networking: str = "system") -> str:
    """Serve on a free port, fetch a page from it with hcore's client, stop.

    :param networking: a key of :data:`NETWORKING`.
    :return: the page.
    """
    net = NETWORKING[networking]()
    ca_file = Path(tempfile.mkdtemp(prefix="hcore-example-")) / "ca.pem"
    tls = make_certificate(str(ca_file)) if version != "2" else None
    listener = await create_listener(version, "127.0.0.1", 0, tls, net)
    port = listener.local_addresses[-1][1]
    client_tls = ClientTLSConfig(cafile=str(ca_file))
    opener: HTTPOpener
    if version == "3":
        opener = HTTPOverQUICOpener(
            HTTP3ClientFactory(), networking=net, tls_config=client_tls
        )
    else:
        factory = ALPNHTTPFactory([HTTP1ClientFactory(), HTTP2ClientFactory()])
        if version == "2":
            factory = ALPNHTTPFactory([HTTP2ClientFactory()])
        opener = HTTPOverTCPOpener(factory, networking=net, tls_config=client_tls)
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle_connection)
        async with await opener(("localhost", port), tls=tls is not None) as connection:
            stream = await connection.open_stream(
                [
                    (b":method", b"POST"),
                    (b":scheme", b"https" if tls else b"http"),
                    (b":authority", f"localhost:{port}".encode()),
                    (b":path", b"/self-test"),
                ]
            )
            await stream.send_data(b"hello", end_stream=True)
            page = b"".join(
                [
                    event.data
                    async for event in stream
                    if isinstance(event, DataReceived)
                ]
            )
        await listener.aclose()
    return page.decode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", choices=VERSIONS, default="alpn")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", action="store_true", help="TLS for --version 1 or 2")
    parser.add_argument("--cert", help="certificate chain (PEM)")
    parser.add_argument("--key", help="private key (PEM), if not in --cert")
    parser.add_argument("--ca-out", help="where to write the throwaway CA")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--networking", choices=tuple(NETWORKING), default="system")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args(argv)
    if args.self_test:
        page = anyio.run(self_test, args.version, args.networking, backend=args.backend)
        print(page, end="")
        return
    try:
        anyio.run(serve, args, backend=args.backend)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
