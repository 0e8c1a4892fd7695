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

Each figure is the best of ``--repeat`` runs; the ratios are hcore's figure
over the other client's (above 1: hcore is faster).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trustme

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hcore import ClientTLSConfig  # noqa: E402
from hcore_io.client import Client, ConnectionPool  # noqa: E402
from tests.integration.client_peers import Nginx, run_nginx  # noqa: E402

Job = Callable[[str], Awaitable[int]]


async def _requests(
    get: Callable[[str], Awaitable[int]], url: str, total: int, tasks: int
) -> float:
    """Requests per second of ``total`` GETs spread over ``tasks`` tasks."""
    per_task = total // tasks

    async def worker() -> None:
        for _ in range(per_task):
            assert await get(url) == 1024

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return per_task * tasks / (time.perf_counter() - started)


async def _download(fetch: Job, url: str) -> float:
    """MB/s of one download."""
    started = time.perf_counter()
    size = await fetch(url)
    return size / (time.perf_counter() - started) / 1e6


class _Hcore:
    name = "hcore"

    def __init__(self, ca: str, http2: bool) -> None:
        versions = ("1.1", "2") if http2 else ("1.1",)
        pool = ConnectionPool(
            tls_config=ClientTLSConfig(cafile=ca),
            http_versions=versions,
            max_requests_per_connection=1_000_000,
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


async def _bench(nginx: Nginx, ca: str, args: argparse.Namespace) -> None:
    http1 = f"http://127.0.0.1:{nginx.http_port}"
    http2 = f"https://localhost:{nginx.https_port}"
    scenarios: list[tuple[str, str, bool, int]] = [
        ("HTTP/1.1 sequential", http1, False, 1),
        ("HTTP/1.1 16 tasks", http1, False, 16),
        ("HTTP/2 sequential", http2, True, 1),
        ("HTTP/2 16 tasks", http2, True, 16),
    ]
    print(f"{'scenario':24} {'client':8} {'req/s':>9}")
    for title, base, is_h2, tasks in scenarios:
        results: dict[str, float] = {}
        for kind in (_Hcore, _Httpx, _Aiohttp):
            if is_h2 and kind is _Aiohttp:
                continue
            best = 0.0
            for _ in range(args.repeat):
                client = kind(ca, is_h2)
                try:
                    await client.get(f"{base}/kib.bin")  # warm up the connection
                    rate = await _requests(
                        client.get, f"{base}/kib.bin", args.requests, tasks
                    )
                finally:
                    await client.aclose()
                best = max(best, rate)
            results[kind.name] = best
            print(f"{title:24} {kind.name:8} {best:9.0f}")
        _ratios(title, results)
    name = "huge.bin"
    print(f"\n{'download':24} {'client':8} {'MB/s':>9}")
    for title, base, is_h2 in (("HTTP/1.1", http1, False), ("HTTP/2", http2, True)):
        results = {}
        for kind in (_Hcore, _Httpx, _Aiohttp):
            if is_h2 and kind is _Aiohttp:
                continue
            client = kind(ca, is_h2)
            try:
                rate = await _download(client.fetch, f"{base}/{name}")
            finally:
                await client.aclose()
            results[kind.name] = rate
            print(f"{title:24} {kind.name:8} {rate:9.1f}")
        _ratios(title, results)


def _ratios(title: str, results: dict[str, float]) -> None:
    ours = results["hcore"]
    ratios = ", ".join(
        f"hcore/{name} = {ours / value:.2f}"
        for name, value in results.items()
        if name != "hcore"
    )
    print(f"{'':24} {ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--download-size", type=int, default=1 << 30)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="800 requests, 1 repeat, 256 MiB download",
    )
    args = parser.parse_args()
    if args.quick:
        args.requests, args.repeat, args.download_size = 800, 1, 256 << 20
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
            asyncio.run(_bench(nginx, str(ca_path), args))


if __name__ == "__main__":
    main()
