"""A tour of the pooled client, against an HTTPS server started in process.

The server is an :class:`~hcore_io.server.ASGIServer` on
``https://127.0.0.1`` with a throwaway certificate: HTTP/1.1 and HTTP/2 over
TLS, HTTP/3 over QUIC on the same port number.  The client streams a body
up and one down, runs into a read timeout, follows a redirect, retries a
connection that fails, moves to HTTP/3 when the server advertises it (and
back to TCP when HTTP/3 does not answer), goes through a CONNECT proxy, and
prints its pool's metrics.

Run it: ``python docs/examples/client_tour.py``.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from hcore import ClientTLSConfig, HCoreError
from hcore_io.client import Client, ConnectionPool, Timeouts
from hcore_io.server import (
    ASGIServer,
    GeneratedCertificate,
    ProxyServer,
    Receive,
    Scope,
    Send,
    generate_certificate,
)

CHUNK = 64 * 1024


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/upload`` counts the body, ``/download`` streams one, ``/slow``
    answers after half a second, ``/old`` redirects to ``/new``; anything
    else names the HTTP version."""
    if scope["type"] != "http":
        return
    received = 0
    more_body = True
    while more_body:  # read the request body, as it comes
        message = await receive()
        body = message.get("body", b"")
        assert isinstance(body, bytes)
        received += len(body)
        more_body = bool(message.get("more_body"))
    status, headers, reply = 200, [(b"content-type", b"text/plain")], b""
    if scope["path"] == "/upload":
        reply = b"received %d bytes" % received
    elif scope["path"] == "/download":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(16):
            chunk = b"x" * CHUNK
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    elif scope["path"] == "/slow":
        await anyio.sleep(0.5)
    elif scope["path"] == "/old":
        status, headers = 307, [(b"location", b"/new")]
    else:
        reply = f"hello over HTTP/{scope['http_version']}".encode()
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": reply})


async def upload_body() -> AsyncIterator[bytes]:
    """A request body made piece by piece (read from a file, say)."""
    for _ in range(16):
        yield b"u" * CHUNK


async def streaming(client: Client, base: str) -> None:
    # Up: an async iterable body is sent as it comes, each piece waiting
    # for the server's flow control.
    response = await client.post(f"{base}/upload", content=upload_body())
    print(response.status, response.content)
    # Down: the body is read piece by piece; leaving the block closes it.
    async with client.stream("GET", f"{base}/download") as response:
        pieces = [len(chunk) async for chunk in response.stream]
    print(f"downloaded {sum(pieces)} bytes in {len(pieces)} pieces")


async def timeouts(client: Client, base: str) -> None:
    try:
        # Per request: replaces the client's timeouts for this request.
        await client.get(f"{base}/slow", timeouts=Timeouts(connect=5, read=0.1))
    except TimeoutError as exc:  # hcore_io.ReadTimeout is a TimeoutError
        print(f"{type(exc).__name__}: {exc}")


async def redirects(client: Client, base: str) -> None:
    response = await client.get(f"{base}/old")
    print(response.status, response.url, [r.status for r in response.history])


async def retries(tls_config: ClientTLSConfig) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with Client(tls_config=tls_config, retries=2, backoff_factor=0.05) as client:
        try:
            await client.get(f"https://127.0.0.1:{port}/")
        except HCoreError as exc:  # hcore_io.ConnectError
            print(f"{type(exc).__name__} after {client.retry_count} retries")


async def http3(tls_config: ClientTLSConfig, base: str) -> None:
    # The first request goes over TCP (HTTP/2 by ALPN); its response's
    # Alt-Svc field says HTTP/3 is on the same port, so the next goes there.
    async with Client(tls_config=tls_config) as client:
        for _ in range(2):
            response = await client.get(f"{base}/")
            print(response.content, "alt-svc:", response.get_header(b"alt-svc"))
    # Asked for HTTP/3 only, the client goes straight to QUIC.
    async with Client(tls_config=tls_config, http_versions=("3",)) as client:
        print((await client.get(f"{base}/")).content)


async def liar(scope: Scope, receive: Receive, send: Send) -> None:
    """Advertises HTTP/3 on its own port, where nothing answers UDP."""
    if scope["type"] == "http":
        server = scope["server"]
        assert isinstance(server, tuple)
        headers = [(b"alt-svc", b'h3=":%d"' % server[1])]
        version = str(scope["http_version"]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": version})


async def fallback(certificate: GeneratedCertificate) -> None:
    # The QUIC attempt hears nothing within quic_connect_timeout: the
    # alternative is marked broken and the request goes over TCP.
    server = ASGIServer(liar, http3=False, tls_config=certificate.server_tls_config())
    tls_config = certificate.client_tls_config()
    pool = ConnectionPool(tls_config=tls_config, quic_connect_timeout=0.5)
    async with anyio.create_task_group() as group:
        (endpoint,) = await group.start(server.serve, ["https://127.0.0.1:0"])
        async with Client(pool=pool) as client:
            url = f"https://127.0.0.1:{endpoint.port}/"
            # The first request learns the Alt-Svc; the second tries HTTP/3.
            for attempt in ("first", "second"):
                response = await client.get(url)
                print(f"{attempt} request: HTTP/{response.http_version}")
        await pool.aclose()
        await server.shutdown(timeout=1)


async def proxied(tls_config: ClientTLSConfig, base: str) -> None:
    # A tunnelling proxy in process; the client asks it for a CONNECT
    # tunnel to the origin and runs TLS (and HTTP/2) inside the tunnel.
    proxy = ProxyServer()
    async with anyio.create_task_group() as group:
        (endpoint,) = await group.start(proxy.serve, ["http://127.0.0.1:0"])
        async with Client(tls_config=tls_config, proxy=str(endpoint)) as client:
            response = await client.get(f"{base}/")
            print(f"through the proxy: {response.content!r}")
        await proxy.shutdown(timeout=1)


def metrics(client: Client) -> None:
    snapshot = client.pool.metrics
    print(f"{snapshot.created} connection(s) opened, {snapshot.requests} requests")
    for connection in snapshot.connections:
        print(
            f"  {connection.origin} HTTP/{connection.http_version}"
            f" {connection.state.value}: {connection.requests} requests,"
            f" {connection.bytes_sent} bytes sent,"
            f" {connection.bytes_received} received,"
            f" {connection.average_request_time * 1000:.1f} ms each"
        )


async def main(certificate: GeneratedCertificate) -> None:
    server = ASGIServer(app, tls_config=certificate.server_tls_config())
    tls_config = certificate.client_tls_config()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            (endpoint,) = await group.start(server.serve, ["https://127.0.0.1:0"])
            base = f"https://127.0.0.1:{endpoint.port}"
            # Per client: every request gets these unless it gives its own.
            timeouts_ = Timeouts(connect=5, read=10, write=10, pool=5)
            async with Client(
                tls_config=tls_config, timeouts=timeouts_, http_versions=("1.1", "2")
            ) as client:
                await streaming(client, base)
                await timeouts(client, base)
                await redirects(client, base)
                metrics(client)
            await retries(tls_config)
            await http3(tls_config, base)
            await fallback(certificate)
            await proxied(tls_config, base)
            await server.shutdown(timeout=1)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        anyio.run(main, generate_certificate(Path(directory), ["127.0.0.1"]))
