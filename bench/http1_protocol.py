"""In-memory HTTP/1.1 protocol benchmark: every registered implementation.

No sockets and no event loop: requests of the shape ``wrk`` sends are fed to
a server protocol made by each HTTP/1.1 implementation registered in
:data:`hcore.protocols.default_registry` (``h11``, and ``httptools`` when it
is installed), answered with a 13-byte body, and the bytes to send taken —
one request per read (keep-alive) and 16 per read (pipelined).  The client
side: each implementation's client protocol sends a GET and parses a canned
keep-alive response of nginx's shape (requests per second), and parses a
``--download-mib`` response body fed in 256 KiB reads, the way a socket
hands it over (MB/s).  Prints the best of ``--runs`` and the ratio to
``h11``; for the server, also the least CPU time per request (the
process's CPU time, which other work on the machine disturbs less than the
rate).

Usage (from the repository root)::

    python bench/http1_protocol.py [--requests 50000] [--runs 3] [--download-mib 1024]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hcore.events import DataReceived, HeadersReceived
from hcore.protocols import HTTPOverTCPFactory, default_registry

REQUEST = (
    b"GET /hello HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: wrk\r\n"
    b"Accept: */*\r\n\r\n"
)
RESPONSE = [
    (b":status", b"200"),
    (b"content-type", b"text/plain"),
    (b"content-length", b"13"),
]
BODY = b"Hello, world!"
GET = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"localhost:8000"),
    (b":path", b"/hello"),
]
NGINX_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"
    b"Date: Thu, 26 Nov 2026 05:00:00 GMT\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 13\r\nConnection: keep-alive\r\n"
    b'ETag: "6565a1b0-d"\r\nAccept-Ranges: bytes\r\n\r\nHello, world!'
)
READ_SIZE = 256 << 10


def run(factory: HTTPOverTCPFactory, requests: int, depth: int) -> tuple[float, float]:
    """Serve ``requests`` requests, ``depth`` per read.

    :return: requests/s, and CPU microseconds per request (the process's
        CPU time, steadier than wall time on a busy machine).
    """
    server = factory()
    data = REQUEST * depth
    started = time.perf_counter()
    cpu = time.process_time()
    for _ in range(requests // depth):
        server.bytes_received(data)
        for _ in range(depth):
            event = server.next_event()
            assert isinstance(event, HeadersReceived), event
            while server.next_event() is not None:
                pass
            server.submit_headers(event.stream_id, RESPONSE)
            server.submit_data(event.stream_id, BODY, end_stream=True)
        server.bytes_to_send()
    served = requests // depth * depth
    cpu_us = (time.process_time() - cpu) / served * 1e6
    return served / (time.perf_counter() - started), cpu_us


def run_client(factory: HTTPOverTCPFactory, requests: int) -> float:
    """Send ``requests`` GETs and parse their responses; return requests/s."""
    client = factory()
    started = time.perf_counter()
    for _ in range(requests):
        stream_id = client.get_available_stream_id()
        client.submit_headers(stream_id, GET, end_stream=True)
        client.bytes_to_send()
        client.bytes_received(NGINX_RESPONSE)
        while client.next_event() is not None:
            pass
        assert client.is_available()
    return requests / (time.perf_counter() - started)


def run_download(factory: HTTPOverTCPFactory, size: int) -> float:
    """Parse one response of ``size`` body bytes; return MB/s of body."""
    client = factory()
    client.submit_headers(1, GET, end_stream=True)
    client.bytes_to_send()
    # Distinct read buffers, as a socket gives, 16 MiB of them so that the
    # bytes come from memory rather than the CPU's cache.
    reads = [bytes([i]) * READ_SIZE for i in range(64)]
    got = 0
    started = time.perf_counter()
    client.bytes_received(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    for i in range(size // READ_SIZE):
        client.bytes_received(reads[i % 64])
        while (event := client.next_event()) is not None:
            if isinstance(event, DataReceived):
                got += len(event.data)
    elapsed = time.perf_counter() - started
    assert got == size // READ_SIZE * READ_SIZE and client.is_available()
    return got / elapsed / 1e6


def client_table(names: tuple[str, ...], requests: int, runs: int, mib: int) -> None:
    """Measure and print the client side."""
    makers: dict[str, Callable[..., HTTPOverTCPFactory]] = {
        name: default_registry.get("1.1", name).client  # type: ignore[misc]
        for name in names
    }
    print(f"{'client':<14}" + "".join(f"{name:>18}" for name in names))
    for mode in ("req/s", "download MB/s"):
        best = {
            name: max(
                run_client(make(), requests)
                if mode == "req/s"
                else run_download(make(), mib << 20)
                for _ in range(runs)
            )
            for name, make in makers.items()
        }
        ratios = "".join(
            f"   {name}/h11 {best[name] / best['h11']:.2f}"
            for name in names
            if name != "h11"
        )
        print(f"{mode:<14}" + "".join(f"{best[n]:>18.0f}" for n in names) + ratios)


def main() -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--download-mib", type=int, default=1024)
    args = parser.parse_args()
    names = default_registry.names("1.1")
    makers: dict[str, Callable[..., HTTPOverTCPFactory]] = {
        name: default_registry.get("1.1", name).server  # type: ignore[misc]
        for name in names
    }
    print(
        f"{'mode':<14}"
        + "".join(f"{name + ' req/s':>18}{'(CPU us/req)':>14}" for name in names)
    )
    for mode, depth in (("keep-alive", 1), ("pipelined x16", 16)):
        results = {
            name: [
                run(
                    make(max_pipelined_size=len(REQUEST) * depth),
                    args.requests,
                    depth,
                )
                for _ in range(args.runs)
            ]
            for name, make in makers.items()
        }
        best = {name: max(rate for rate, _ in runs) for name, runs in results.items()}
        cpu = {name: min(us for _, us in runs) for name, runs in results.items()}
        ratios = "".join(
            f"   {name}/h11 {best[name] / best['h11']:.2f}"
            for name in names
            if name != "h11"
        )
        print(
            f"{mode:<14}"
            + "".join(f"{best[n]:>18.0f}{f'({cpu[n]:.1f})':>14}" for n in names)
            + ratios
        )
    client_table(names, args.requests, args.runs, args.download_mib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
