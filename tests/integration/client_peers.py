"""Real servers for the client's integration tests: nginx and hypercorn.

Each runs as a subprocess with a configuration generated in a temporary
directory, on 127.0.0.1 ports found free by binding first, with logs and
pid file there too and certificates from the session's trustme CA.  A
missing server fails the test (no skipping).  nginx logs ``$connection``
for every request, so tests count the connections it accepted.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ("Hypercorn", "Nginx", "free_port", "run_hypercorn", "run_nginx")

NGINX = "/usr/sbin/nginx"
# Bodies of the large downloads: sparse files, so creating them costs nothing.
LARGE_SIZE = 256 << 20
MEDIUM_SIZE = 64 << 20
_START_TIMEOUT = 15.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nobody uses on 127.0.0.1 now (the system's pick for port 0)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _wait_for_tcp(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    # Bounded by the deadline.
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited:\n{_tail(log)}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"server did not listen on {port}:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _certificate(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


@dataclass
class Nginx:
    """A running nginx."""

    #: Plain HTTP/1.1 port.
    http_port: int
    #: TLS port, HTTP/2 and HTTP/1.1 by ALPN.
    https_port: int
    #: Plain HTTP/1.1 port whose idle connections are closed after 0.3 s.
    short_keepalive_port: int
    access_log: Path

    def connections(self, port: int) -> set[str]:
        """The connection serial numbers of the requests logged for ``port``."""
        found: set[str] = set()
        for line in self.access_log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == str(port):
                found.add(fields[1])
        return found

    def requests(self, port: int) -> int:
        """How many requests are logged for ``port`` so far.

        nginx logs a request after sending its response, so a client that
        has its answer may still be ahead of the log by a moment.
        """
        return sum(
            1
            for line in self.access_log.read_text().splitlines()
            if line.split()[:1] == [str(port)]
        )

    def protocols(self, port: int) -> set[str]:
        """The protocols (``HTTP/1.1``, ``HTTP/2.0``) logged for ``port``."""
        return {
            line.split()[3]
            for line in self.access_log.read_text().splitlines()
            if line.split()[0] == str(port)
        }


_NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format conn '$server_port $connection $connection_requests '
                    '$server_protocol $request_uri $status';
    access_log {tmp}/access.log conn;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 10000;
    default_type application/octet-stream;
    root {tmp}/www;
    server {{
        listen 127.0.0.1:{http_port};
        location = /redirect {{ return 302 /small.txt; }}
        location = /loop {{ return 302 /loop; }}
    }}
    server {{
        listen 127.0.0.1:{https_port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        http2_max_concurrent_streams 256;
    }}
    server {{
        listen 127.0.0.1:{short_port};
        keepalive_timeout 300ms;
    }}
}}
"""


@contextmanager
def run_nginx(directory: Path, ca: trustme.CA) -> Iterator[Nginx]:
    """Run nginx until the block ends (startup errors in ``startup.log``).

    :raises AssertionError: if nginx is missing or does not start.
    """
    assert shutil.which(NGINX), f"{NGINX} is needed by this test and is missing"
    www = directory / "www"
    www.mkdir()
    (www / "small.txt").write_bytes(b"small\n")
    (www / "kib.bin").write_bytes(bytes(range(256)) * 4)
    for name, size in (("large.bin", LARGE_SIZE), ("medium.bin", MEDIUM_SIZE)):
        with open(www / name, "wb") as sparse:
            sparse.truncate(size)
    cert, key = _certificate(ca, directory)
    ports = [free_port() for _ in range(3)]
    conf = directory / "nginx.conf"
    conf.write_text(
        _NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",
            tmp=directory,
            http_port=ports[0],
            https_port=ports[1],
            short_port=ports[2],
            cert=cert,
            key=key,
        )
    )
    log = directory / "error.log"
    with open(directory / "startup.log", "wb") as startup:
        process = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(conf)],
            stdout=startup,
            stderr=subprocess.STDOUT,
        )
    try:
        for port in ports:
            _wait_for_tcp(port, process, log)
        yield Nginx(ports[0], ports[1], ports[2], directory / "access.log")
    finally:
        _stop(process)


@dataclass
class Hypercorn:
    """A running hypercorn: HTTP/1.1 and HTTP/2 over TLS, HTTP/3 over QUIC."""

    tls_port: int
    quic_port: int


_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = b"hello from hypercorn"
    if path.startswith("/bytes/"):
        body = bytes(range(256)) * (int(path[7:]) // 256)
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
"""


@contextmanager
def run_hypercorn(directory: Path, ca: trustme.CA) -> Iterator[Hypercorn]:
    """Run hypercorn (from this virtualenv) until the block ends."""
    executable = Path(os.__file__).parents[2] / "bin" / "hypercorn"
    venv = Path(__file__).parents[2] / ".venv" / "bin" / "hypercorn"
    binary = venv if venv.exists() else executable
    assert binary.exists(), "hypercorn is needed by this test and is missing"
    (directory / "h3app.py").write_text(_APP)
    cert, key = _certificate(ca, directory)
    tls_port, quic_port = free_port(), free_port(socket.SOCK_DGRAM)
    log = directory / "hypercorn.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                str(binary),
                "--certfile",
                str(cert),
                "--keyfile",
                str(key),
                "--bind",
                f"127.0.0.1:{tls_port}",
                "--quic-bind",
                f"127.0.0.1:{quic_port}",
                "h3app:app",
            ],
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_tcp(tls_port, process, log)
        yield Hypercorn(tls_port, quic_port)
    finally:
        _stop(process)
