"""A custom HTTP client in a page: HTTP/1.1, HTTP/2 or HTTP/3, chosen by a flag.

Fetches one URL and prints the status, the headers and the body::

    python examples/custom_client.py https://localhost:8443/ --cacert ca.pem
    python examples/custom_client.py http://127.0.0.1:8080/ --version 2   # h2c
    python examples/custom_client.py https://localhost:8443/ --version 3 --insecure
    python examples/custom_client.py https://localhost:8443/ --data 'a body'

``--version alpn`` (the default) offers HTTP/2 and HTTP/1.1 and speaks what
the server picks; ``2`` without TLS speaks HTTP/2 with prior knowledge.
``--networking epoll`` moves the bytes with Linux's epoll instead of
AnyIO's sockets.  ``--self-test`` starts a small server in the process (on
in-memory networking) and fetches from it with every version.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import anyio

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived, HeadersReceived, InformationalResponseReceived
from hcore.protocols import ALPNHTTPFactory, HTTPOverTCPFactory
from hcore.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory
from hcore_io.connections import (
    HTTPConnection,
    HTTPListener,
    HTTPOpener,
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
    PriorKnowledgeHTTPFactory,
)
from hcore_io.networking import (
    ClientNetworking,
    EpollNetworking,
    MemoryNetworking,
    SystemNetworking,
)

#: The socket backends ``--networking`` chooses from.
NETWORKING = {"system": SystemNetworking, "epoll": EpollNetworking}


def make_opener(
    version: str, tls_config: ClientTLSConfig, networking: ClientNetworking
) -> HTTPOpener:
    """The opener for a version: the one argument that picks HTTP/1.1, 2 or 3."""
    if version == "3":
        return HTTPOverQUICOpener(
            HTTP3ClientFactory(), networking=networking, tls_config=tls_config
        )
    choices: dict[str, list[HTTPOverTCPFactory]] = {
        "1": [HTTP1ClientFactory()],
        "2": [HTTP2ClientFactory()],
        "alpn": [HTTP1ClientFactory(), HTTP2ClientFactory()],
    }
    factories = choices[version]
    return HTTPOverTCPOpener(
        ALPNHTTPFactory(factories), networking=networking, tls_config=tls_config
    )


async def fetch(
    url: str,
    *,
    version: str = "alpn",
    data: bytes | None = None,
    tls_config: ClientTLSConfig | None = None,
    networking: ClientNetworking | None = None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Fetch a URL.

    :return: the status, the response headers and the body.
    """
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or "localhost"
    port = parts.port or (443 if tls else 80)
    opener = make_opener(
        version, tls_config or ClientTLSConfig(), networking or SystemNetworking()
    )
    connection: HTTPConnection = await opener((host, port), tls=tls)
    async with connection:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = [
            (b":method", b"POST" if data is not None else b"GET"),
            (b":scheme", parts.scheme.encode()),
            (b":authority", parts.netloc.encode()),
            (b":path", path.encode()),
            (b"user-agent", b"hcore-example"),
        ]
        stream = await connection.open_stream(request, end_stream=data is None)
        if data is not None:
            await stream.send_data(data, end_stream=True)
        status, headers, body = 0, [], bytearray()
        async for event in stream:  # ends with the response
            if isinstance(event, InformationalResponseReceived):
                print(f"(interim {event.headers[0][1].decode()})", file=sys.stderr)
            elif isinstance(event, HeadersReceived):
                headers = list(event.headers)
                status = int(dict(headers)[b":status"])
            elif isinstance(event, DataReceived):
                body += event.data
        return status, headers, bytes(body)


async def self_test() -> str:
    """Fetch from an in-process server (memory networking) with every version.

    :return: the pages, one line each.
    """
    import trustme  # the test server's certificate

    net = MemoryNetworking()
    ca = trustme.CA()
    pem = ca.issue_cert("localhost").private_key_and_cert_chain_pem.bytes()
    cert_file = Path(tempfile.mkdtemp(prefix="hcore-example-")) / "server.pem"
    cert_file.write_bytes(pem)
    server_tls = ServerTLSConfig(certfile=str(cert_file))
    client_tls = ClientTLSConfig(cadata=ca.cert_pem.bytes().decode())

    async def hello(connection: HTTPConnection) -> None:
        while (stream := await connection.accept_stream()) is not None:
            async with stream:
                async for _ in stream:  # the request
                    pass
                text = f"hello over HTTP/{connection.http_version}\n".encode()
                await stream.send_headers([(b":status", b"200")])
                await stream.send_data(text, end_stream=True)

    both = PriorKnowledgeHTTPFactory(HTTP1ServerFactory(), HTTP2ServerFactory())
    tcp = await HTTPOverTCPListener.create(
        both, net, local_address=("127.0.0.1", 443), tls_config=server_tls
    )
    plain = await HTTPOverTCPListener.create(both, net, local_address=("127.0.0.1", 80))
    quic: HTTPListener = await HTTPOverQUICListener.create(
        HTTP3ServerFactory(),
        net,
        local_address=("127.0.0.1", 443),
        tls_config=server_tls,
    )
    pages = []
    async with anyio.create_task_group() as group:
        for listener in (tcp, plain, quic):
            group.start_soon(listener.serve, hello)
        for url, version in [
            ("https://localhost/", "alpn"),
            ("https://localhost/", "1"),
            ("http://localhost/", "2"),
            ("https://localhost/", "3"),
        ]:
            status, _, body = await fetch(
                url, version=version, tls_config=client_tls, networking=net
            )
            pages.append(f"{url} --version {version}: {status} {body.decode()}")
        for listener in (tcp, plain, quic):
            await listener.aclose()
    return "".join(pages)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--version", choices=("1", "2", "3", "alpn"), default="alpn")
    parser.add_argument("--data", help="send this as the request body (POST)")
    parser.add_argument("--cacert", help="CA certificates to trust (PEM)")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--networking", choices=tuple(NETWORKING), default="system")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args(argv)
    if args.self_test:
        print(anyio.run(self_test, backend=args.backend), end="")
        return
    if not args.url:
        parser.error("a URL is needed (or --self-test)")
    tls_config = ClientTLSConfig(cafile=args.cacert, insecure=args.insecure)
    data = None if args.data is None else args.data.encode()
    networking = NETWORKING[args.networking]()
    status, headers, body = anyio.run(
        lambda: fetch(
            args.url,
            version=args.version,
            data=data,
            tls_config=tls_config,
            networking=networking,
        ),
        backend=args.backend,
    )
    for name, value in headers:
        print(f"{name.decode()}: {value.decode()}", file=sys.stderr)
    sys.stdout.buffer.write(body)
    sys.exit(0 if status < 400 else 1)


if __name__ == "__main__":
    main()
