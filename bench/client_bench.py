"""Benchmark: hcore's Client against httpx and aiohttp, on a local nginx.

Run by hand (not in CI), after ``pip install "httpx[http2]" aiohttp``::

    .venv/bin/python bench/client_bench.py            # full run, 1 GiB download
    .venv/bin/python bench/client_bench.py --quick    # fewer requests, 256 MiB

nginx (``/usr/sbin/nginx``) is started with a generated configuration in a
temporary directory (the same set-up as the integration tests).  Every
client runs on asyncio in this process, one after the other:

- requests/s for a 1 KiB file, sequential and with 16 concurrent tasks,
  over HTTP/1.1 (plain TCP) and HTTP/2 (TLS, ALPN); aiohttp has no HTTP/2;
- MB/s of one large download over HTTP/1.1 and HTTP/2, body read in pieces.

hcore's client runs on each socket backend: ``hcore`` on
:class:`~hcore_io.networking.SystemNetworking` (AnyIO's sockets) and
``hcore-epoll`` on :class:`~hcore_io.networking.EpollNetworking`, both with
the default (h11) HTTP/1.1 implementation, and ``hcore-httptools`` on
``EpollNetworking`` with ``http1_implementation="httptools"`` (HTTP/1.1
scenarios only: over TLS ALPN picks HTTP/2).  Every client may open 10
connections (aiohttp's ``limit``, httpx's ``max_connections``; hcore's
``max_connections`` and ``max_connections_per_host``).  The
downloads also have a ``raw`` reader: a plain non-blocking socket on the
same event loop that sends the request and counts the response's bytes
(an ``asyncio.BufferedProtocol`` filled in place, 256 KiB at a time; over
TLS, ``ssl.SSLObject`` with memory buffers and HTTP/1.1, since a raw reader
has no HTTP/2), which is
what issue 11's "0.8x a raw socket" target compares with.

Each figure is the best of ``--repeat`` runs (``--download-repeat`` for
downloads), taken round-robin over the clients; the ratios are hcore's figure
over the other client's (above 1: hcore is faster).  Beside each figure is
the client's CPU time (``time.process_time``, this process only: nginx runs
in its own) per request, or per MB, in the same best run; on a small shared
machine that moves much less than the absolute figures, which move by tens
of percent from run to run; the ratios of one run are what to compare.

``--scenarios`` and ``--clients`` pick a subset (substrings of the names);
``--profile CLIENT`` runs ``--requests`` HTTP/1.1 requests (sequential, or
over ``--profile-tasks`` concurrent tasks; or,
with ``--profile-download``, the download; ``--profile-http2``: over
HTTP/2 and TLS) of one client under cProfile (``--profiler pyinstrument``:
pyinstrument's sampler) and prints the top entries by own time and by
cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import trustme

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hcore import ClientTLSConfig  # noqa: E402
from hcore_io.client import Client, ConnectionPool  # noqa: E402
from hcore_io.networking import EpollNetworking, SystemNetworking  # noqa: E402
from tests.integration.client_peers import Nginx, run_nginx  # noqa: E402

Job = Callable[[str], Awaitable[int]]
# Bytes a raw reader asks for at once.
_RAW_READ = 256 << 10
# What the raw reader subtracts for nginx's response head.
_HEAD_ALLOWANCE = 300


class _Result:
    """The best rate of a client's runs, and its CPU time in that run."""

    def __init__(self) -> None:
        self.rate = 0.0
        self.cpu = 0.0

    def add(self, rate: float, cpu: float) -> None:
        if rate > self.rate:
            self.rate, self.cpu = rate, cpu


async def _requests(
    get: Callable[[str], Awaitable[int]], url: str, total: int, tasks: int
) -> tuple[float, float]:
    """Requests per second of ``total`` GETs over ``tasks`` tasks, and CPU µs each."""
    per_task = total // tasks

    async def worker() -> None:
        for _ in range(per_task):
            assert await get(url) == 1024

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    done = per_task * tasks
    return done / elapsed, cpu / done * 1e6


async def _download(fetch: Job, url: str) -> tuple[float, float]:
    """MB/s of one download, and CPU ms per MB."""
    cpu = time.process_time()
    started = time.perf_counter()
    size = await fetch(url)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return size / elapsed / 1e6, cpu / (size / 1e6) * 1e3


class _Hcore:
    name = "hcore"
    http1_implementation: str | None = None

    def __init__(self, ca: str, http2: bool) -> None:
        versions = ("1.1", "2") if http2 else ("1.1",)
        pool = ConnectionPool(
            self._networking(),
            tls_config=ClientTLSConfig(cafile=ca),
            http_versions=versions,
            max_connections=10,
            max_connections_per_host=10,
            max_requests_per_connection=1_000_000,
            http1_implementation=self.http1_implementation,
        )
        self._client = Client(pool=pool)

    async def get(self, url: str) -> int:
        return len((await self._client.get(url)).content or b"")

    async def fetch(self, url: str) -> int:
        size = 0
        async with self._client.stream("GET", url) as response:
            async for chunk in response.stream:
                size += len(chunk)
        return size

    async def aclose(self) -> None:
        await self._client.aclose()

    @staticmethod
    def _networking() -> SystemNetworking | EpollNetworking:
        return SystemNetworking()


class _HcoreEpoll(_Hcore):
    name = "hcore-epoll"

    @staticmethod
    def _networking() -> SystemNetworking | EpollNetworking:
        return EpollNetworking()


class _HcoreHttptools(_HcoreEpoll):
    name = "hcore-httptools"
    http1_implementation = "httptools"


class _Raw:
    """A plain socket: the request written, the response's bytes counted."""

    name = "raw"

    def __init__(self, ca: str, http2: bool) -> None:
        self._context = ssl.create_default_context(cafile=ca) if http2 else None

    async def fetch(self, url: str) -> int:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 80
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        request = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ).encode()
        total = 0
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
            if self._context is None:
                total = await self._fetch_plain(loop, sock, request)
            else:
                total = await self._fetch_tls(loop, sock, host, request)
        finally:
            sock.close()
        return _body_size(total, url)

    @staticmethod
    async def _fetch_plain(
        loop: asyncio.AbstractEventLoop, sock: socket.socket, request: bytes
    ) -> int:
        # asyncio's fastest reading path: a buffered protocol, filled in place.
        transport, counter = await loop.create_connection(_Counter, sock=sock)
        transport.write(request)
        return await counter.done

    async def _fetch_tls(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        host: str,
        request: bytes,
    ) -> int:
        assert self._context is not None
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self._context.wrap_bio(incoming, outgoing, server_hostname=host)
        total = 0

        async def pump() -> bool:
            if outgoing.pending:
                await loop.sock_sendall(sock, outgoing.read())
            data = await loop.sock_recv(sock, _RAW_READ)
            if not data:
                incoming.write_eof()
                return False
            incoming.write(data)
            return True

        # Bounded by the handshake's flights.
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if not await pump():
                    raise ConnectionError("closed during the handshake") from None
        tls.write(request)
        await loop.sock_sendall(sock, outgoing.read())
        # Bounded by the response (the server closes at its end).
        while True:
            try:
                n = len(tls.read(_RAW_READ))
            except ssl.SSLWantReadError:
                if not await pump():
                    break
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            if not n:
                break
            total += n
        return total

    async def aclose(self) -> None:
        pass


class _Counter(asyncio.BufferedProtocol):
    """Counts the bytes of a connection until the peer closes it."""

    def __init__(self) -> None:
        self._buffer = bytearray(_RAW_READ)
        self._total = 0
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._total += nbytes

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self._total)


def _body_size(total: int, url: str) -> int:
    """The body's size: what was read, less a response head (a few hundred bytes)."""
    del url
    return total - min(total, _HEAD_ALLOWANCE)


class _Httpx:
    name = "httpx"

    def __init__(self, ca: str, http2: bool) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=ca),
            http2=http2,
            limits=httpx.Limits(max_connections=10, max_keepalive_connections=10),
        )

    async def get(self, url: str) -> int:
        return len((await self._client.get(url)).content)

    async def fetch(self, url: str) -> int:
        size = 0
        async with self._client.stream("GET", url) as response:
            async for chunk in response.aiter_raw():
                size += len(chunk)
        return size

    async def aclose(self) -> None:
        await self._client.aclose()


class _Aiohttp:
    name = "aiohttp"

    def __init__(self, ca: str, http2: bool) -> None:
        import aiohttp

        assert not http2
        self._context = ssl.create_default_context(cafile=ca)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=10, ssl=self._context)
        )

    async def get(self, url: str) -> int:
        async with self._session.get(url) as response:
            return len(await response.read())

    async def fetch(self, url: str) -> int:
        size = 0
        async with self._session.get(url) as response:
            async for chunk in response.content.iter_chunked(1 << 20):
                size += len(chunk)
        return size

    async def aclose(self) -> None:
        await self._session.close()


Kind = type[_Hcore | _Raw | _Httpx | _Aiohttp]
_KINDS: tuple[Kind, ...] = (
    _Raw,
    _Hcore,
    _HcoreEpoll,
    _HcoreHttptools,
    _Httpx,
    _Aiohttp,
)


def _kinds(args: argparse.Namespace, is_h2: bool, raw: bool) -> list[Kind]:
    """The clients of a scenario: those asked for that speak its version."""
    chosen = []
    for kind in _KINDS:
        if kind is _Raw and not raw:
            continue
        if is_h2 and kind in (_Aiohttp, _HcoreHttptools):
            continue
        if args.clients and not any(c in kind.name for c in args.clients.split(",")):
            continue
        chosen.append(kind)
    return chosen


def _wanted(args: argparse.Namespace, title: str) -> bool:
    return not args.scenarios or any(
        part.lower() in title.lower() for part in args.scenarios.split(",")
    )


async def _bench(nginx: Nginx, ca: str, args: argparse.Namespace) -> None:
    http1 = f"http://127.0.0.1:{nginx.http_port}"
    http2 = f"https://localhost:{nginx.https_port}"
    scenarios: list[tuple[str, str, bool, int]] = [
        ("HTTP/1.1 sequential", http1, False, 1),
        ("HTTP/1.1 16 tasks", http1, False, 16),
        ("HTTP/2 sequential", http2, True, 1),
        ("HTTP/2 16 tasks", http2, True, 16),
    ]
    print(f"{'scenario':24} {'client':15} {'req/s':>9} {'CPU us/req':>11}")
    for title, base, is_h2, tasks in scenarios:
        if not _wanted(args, title):
            continue
        clients = _kinds(args, is_h2, raw=False)
        results = {kind.name: _Result() for kind in clients}
        # Round-robin: each repeat runs every client once, so that the
        # machine's ups and downs fall on all of them alike.
        for _ in range(args.repeat):
            for kind in clients:
                client = kind(ca, is_h2)
                assert not isinstance(client, _Raw)
                try:
                    await client.get(f"{base}/kib.bin")  # warm up the connection
                    rate, cpu = await _requests(
                        client.get, f"{base}/kib.bin", args.requests, tasks
                    )
                finally:
                    await client.aclose()
                results[kind.name].add(rate, cpu)
        for name, best in results.items():
            print(f"{title:24} {name:15} {best.rate:9.0f} {best.cpu:11.0f}")
        _ratios(results)
    name = "huge.bin"
    print(f"\n{'download':24} {'client':15} {'MB/s':>9} {'CPU ms/MB':>11}")
    downloads = (
        ("HTTP/1.1 download", http1, False),
        ("HTTP/2 (TLS) download", http2, True),
    )
    for title, base, is_h2 in downloads:
        if not _wanted(args, title):
            continue
        readers = _kinds(args, is_h2, raw=True)
        results = {reader.name: _Result() for reader in readers}
        for _ in range(args.download_repeat):
            for reader in readers:
                fetcher = reader(ca, is_h2)
                try:
                    rate, cpu = await _download(fetcher.fetch, f"{base}/{name}")
                finally:
                    await fetcher.aclose()
                results[reader.name].add(rate, cpu)
        for reader_name, best in results.items():
            print(f"{title:24} {reader_name:15} {best.rate:9.1f} {best.cpu:11.2f}")
        _ratios(results)


def _ratios(results: dict[str, _Result]) -> None:
    for ours in results:
        if not ours.startswith("hcore"):
            continue
        ratios = ", ".join(
            f"{ours}/{name} = {results[ours].rate / value.rate:.2f}"
            for name, value in results.items()
            if not name.startswith("hcore") and value.rate
        )
        if ratios:
            print(f"{'':24} {ratios}")


async def _profile(nginx: Nginx, ca: str, args: argparse.Namespace) -> None:
    """Run one client's sequential requests (or download) under a profiler."""
    import cProfile
    import pstats

    kind = next(k for k in _KINDS if k.name == args.profile)
    client = kind(ca, args.profile_http2)
    base = (
        f"https://localhost:{nginx.https_port}"
        if args.profile_http2
        else f"http://127.0.0.1:{nginx.http_port}"
    )
    if args.profiler == "pyinstrument":
        from pyinstrument import Profiler

        sampler: Profiler | None = Profiler(interval=0.0002, async_mode="disabled")
    else:
        sampler = None
    profiler = cProfile.Profile()
    start, stop = (
        (sampler.start, sampler.stop)
        if sampler is not None
        else (profiler.enable, profiler.disable)
    )
    try:
        if args.profile_download:
            start()
            rate, cpu = await _download(client.fetch, f"{base}/huge.bin")
            stop()
            print(f"{kind.name}: {rate:.1f} MB/s, {cpu:.2f} CPU ms/MB (profiled)")
        else:
            assert not isinstance(client, _Raw)
            await client.get(f"{base}/kib.bin")
            start()
            rate, cpu = await _requests(
                client.get, f"{base}/kib.bin", args.requests, args.profile_tasks
            )
            stop()
            print(f"{kind.name}: {rate:.0f} req/s, {cpu:.0f} CPU us/req (profiled)")
    finally:
        await client.aclose()
    if sampler is not None:
        print(sampler.output_text(unicode=False, show_all=False))
        return
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(args.profile_top)
    stats.sort_stats("cumulative").print_stats(args.profile_top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--download-size", type=int, default=1 << 30)
    parser.add_argument("--download-repeat", type=int, default=3)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="800 requests, 1 repeat each, 256 MiB download",
    )
    parser.add_argument(
        "--scenarios", default="", help="comma-separated substrings of scenarios"
    )
    parser.add_argument(
        "--clients", default="", help="comma-separated substrings of client names"
    )
    parser.add_argument("--profile", metavar="CLIENT", default="")
    parser.add_argument("--profile-download", action="store_true")
    parser.add_argument(
        "--profile-http2", action="store_true", help="profile over HTTP/2 (TLS)"
    )
    parser.add_argument(
        "--profile-tasks",
        type=int,
        default=1,
        help="concurrent tasks of the profiled requests (default 1: sequential)",
    )
    parser.add_argument("--profile-top", type=int, default=30)
    parser.add_argument(
        "--profiler", choices=("cprofile", "pyinstrument"), default="cprofile"
    )
    args = parser.parse_args()
    if args.quick:
        args.requests, args.repeat, args.download_size = 800, 1, 256 << 20
        args.download_repeat = 1
    with tempfile.TemporaryDirectory() as tmp:
        ca = trustme.CA()
        ca_path = Path(tmp) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        nginx_dir = Path(tmp) / "nginx"
        nginx_dir.mkdir()
        with run_nginx(nginx_dir, ca) as nginx:
            # Sparse: creating it costs nothing.
            with open(nginx_dir / "www" / "huge.bin", "wb") as huge:
                huge.truncate(args.download_size)
            run = _profile if args.profile else _bench
            asyncio.run(run(nginx, str(ca_path), args))


if __name__ == "__main__":
    main()
