"""Interop peers: our server in-process, nginx and hypercorn as subprocesses.

Servers listen on 127.0.0.1 only.  nginx and hypercorn get a configuration
generated in a temporary directory, ports found free by binding first (nginx
cannot listen on port 0), certificates from the session's trustme CA, and
their logs and pid file in that directory.  A missing program fails the
test: :func:`require` asserts, it never skips.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import trustme

from hcore import ServerTLSConfig
from hcore.protocols.http1 import HTTP1ServerFactory
from hcore.protocols.http2 import HTTP2ServerFactory
from hcore.protocols.http3 import HTTP3ServerFactory
from hcore_io.connections import (
    HTTPMultiListener,
    HTTPOverQUICListener,
    HTTPOverTCPListener,
    PriorKnowledgeHTTPFactory,
)
from hcore_io.networking import ServerNetworking
from tests.hcore_io.connection_helpers import App, pattern

__all__ = (
    "SIZES",
    "Hypercorn",
    "Nginx",
    "OurServer",
    "free_port",
    "our_server",
    "require",
    "run_hypercorn",
    "run_nginx",
    "write_body",
)

#: Body sizes every direction is checked with.
SIZES = (0, 13, 16 << 20)
_START_TIMEOUT = 15.0


def require(program: str) -> str:
    """The path of a program the test needs; fails (not skips) without it."""
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    assert path is not None, f"{program} is not installed (.ci/run installs it)"
    return path


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port nobody uses on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def write_body(directory: Path, size: int) -> Path:
    """A file holding ``pattern(size)``."""
    path = directory / f"body-{size}"
    if not path.exists():
        path.write_bytes(pattern(size))
    return path


@dataclass
class OurServer:
    """hcore's listeners, serving the test app."""

    app: App
    #: HTTP/1.1 and HTTP/2 (ALPN) over TLS.
    https_port: int
    #: HTTP/1.1 and h2c with prior knowledge, plain TCP.
    http_port: int
    #: HTTP/3.
    quic_port: int


@asynccontextmanager
async def our_server(
    tls: ServerTLSConfig, *, networking: ServerNetworking
) -> AsyncIterator[OurServer]:
    """Serve :class:`App` on every version over ``networking`` until the block ends."""
    both = PriorKnowledgeHTTPFactory(HTTP1ServerFactory(), HTTP2ServerFactory())
    https = await HTTPOverTCPListener.create(
        both, networking, local_address=("127.0.0.1", 0), tls_config=tls
    )
    http = await HTTPOverTCPListener.create(
        both, networking, local_address=("127.0.0.1", 0)
    )
    quic = await HTTPOverQUICListener.create(
        HTTP3ServerFactory(), networking, local_address=("127.0.0.1", 0), tls_config=tls
    )
    listener = HTTPMultiListener([https, http, quic])
    app = App()
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, app)
        try:
            yield OurServer(
                app,
                https.local_addresses[0][1],
                http.local_addresses[0][1],
                quic.local_addresses[0][1],
            )
        finally:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            group.cancel_scope.cancel()


def _certificate(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path = directory / "peer-cert.pem", directory / "peer-key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    # Bounded by the deadline.
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@dataclass
class Nginx:
    """A running nginx: static /bytes/N files, /digest proxied to an upstream."""

    #: HTTP/1.1, plain.
    http_port: int
    #: HTTP/1.1 and HTTP/2 (ALPN) over TLS.
    https_port: int
    #: Where /digest and /echo requests go (HTTP/1.1, plain): start it there.
    upstream_port: int


_NGINX_CONF = """\
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 64m;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {root};
        location /bytes/ {{ }}
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_http_version 1.1;
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
"""


@contextmanager
def run_nginx(directory: Path, ca: trustme.CA) -> Iterator[Nginx]:
    """Run nginx until the block ends.

    :raises AssertionError: if nginx is missing or does not start.
    """
    nginx = require("nginx")
    root = directory / "www"
    (root / "bytes").mkdir(parents=True)
    for size in SIZES:
        (root / "bytes" / str(size)).write_bytes(pattern(size))
    cert, key = _certificate(ca, directory)
    ports = Nginx(free_port(), free_port(), free_port())
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    conf = directory / "nginx.conf"
    conf.write_text(
        _NGINX_CONF.format(
            user=user,
            tmp=directory,
            root=root,
            cert=cert,
            key=key,
            http_port=ports.http_port,
            https_port=ports.https_port,
            upstream_port=ports.upstream_port,
        )
    )
    log = directory / "error.log"
    process = subprocess.Popen(
        [nginx, "-e", str(log), "-p", str(directory), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(ports.https_port, process, log)
        yield ports
    finally:
        _stop(process)


_ASGI_APP = """\
import hashlib

PATTERN = bytes(range(256)) * 4096


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    hasher, size = hashlib.sha256(), 0
    while True:
        message = await receive()
        hasher.update(message.get("body", b""))
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    path = scope["path"]
    headers = [(b"content-type", b"application/octet-stream")]
    if path.startswith("/bytes/"):
        total = int(path[len("/bytes/"):])
        headers.append((b"content-length", str(total).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        sent = 0
        while sent < total:
            piece = PATTERN[: min(len(PATTERN), total - sent)]
            sent += len(piece)
            more = sent < total
            await send({"type": "http.response.body", "body": piece, "more_body": more})
        if total == 0:
            await send({"type": "http.response.body", "body": b""})
    else:
        body = f"{scope['http_version']} {size} {hasher.hexdigest()}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
"""


@dataclass
class Hypercorn:
    """A running hypercorn: ``/bytes/N`` downloads, anything else digests the body."""

    #: HTTP/1.1 and HTTP/2 over TLS.
    https_port: int
    #: HTTP/3 (UDP).
    quic_port: int


@contextmanager
def run_hypercorn(directory: Path, ca: trustme.CA) -> Iterator[Hypercorn]:
    """Run hypercorn (with aioquic for HTTP/3) until the block ends.

    :raises AssertionError: if hypercorn is missing or does not start.
    """
    hypercorn = Path(sys.executable).with_name("hypercorn")
    assert hypercorn.exists(), "hypercorn is not installed in the virtualenv"
    (directory / "asgi_app.py").write_text(_ASGI_APP)
    cert, key = _certificate(ca, directory)
    ports = Hypercorn(free_port(), free_port(socket.SOCK_DGRAM))
    log = directory / "hypercorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(hypercorn),
                "--certfile",
                str(cert),
                "--keyfile",
                str(key),
                "--bind",
                f"127.0.0.1:{ports.https_port}",
                "--quic-bind",
                f"127.0.0.1:{ports.quic_port}",
                "--workers",
                "1",
                "asgi_app:app",
            ],
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(ports.https_port, process, log)
        yield ports
    finally:
        _stop(process)
