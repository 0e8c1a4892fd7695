"""Benchmark: WebSocket echo messages per second, hcore beside websockets and aiohttp.

Run by hand (not in CI)::

    .venv/bin/python bench/websocket_bench.py                # 3 runs of 2 s each
    .venv/bin/python bench/websocket_bench.py --runs 5 --seconds 3
    .venv/bin/python bench/websocket_bench.py --json results.json

Each stack is a client and a server of the same library, in this process,
on one asyncio loop, over loopback TCP (``ws://``):

- ``hcore``: :meth:`hcore_io.client.Client.websocket` against
  :class:`hcore_io.server.ASGIServer` (HTTP/1.1 Upgrade), on
  :class:`~hcore_io.networking.SystemNetworking`;
- ``hcore-epoll``: the same on :class:`~hcore_io.networking.EpollNetworking`;
- ``hcore-h2c``: the same over HTTP/2 with prior knowledge (extended
  CONNECT, RFC 8441), for comparison between hcore's own versions;
- ``websockets``: the ``websockets`` library's asyncio client and server;
- ``aiohttp``: aiohttp's ``ws_connect`` and ``WebSocketResponse``.

One WebSocket per measurement: the client sends a binary message, waits for
its echo, and repeats for ``--seconds``; the figure is round trips per
second.  Sizes: 16 bytes and 1 MiB.  Compression is off everywhere (the
payloads are random), and every message limit is raised above 1 MiB.  The
stacks take turns, run after run, so that noise from other work on the
machine is spread evenly; each cell is the median of the runs, and the
ratios are hcore's median over the other library's (above 1: hcore is
faster).  On a small shared machine the absolute figures move by tens of
percent from run to run; the ratios of one session are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import aiohttp
import anyio
from aiohttp import web
from websockets.asyncio.client import connect as websockets_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hcore_io.client import Client  # noqa: E402
from hcore_io.networking import EpollNetworking, SystemNetworking  # noqa: E402
from hcore_io.server import ASGIServer, Receive, Scope, Send  # noqa: E402

#: A session: (URL, payload, seconds) -> round trips done.
Session = Callable[[str, bytes, float], Awaitable[tuple[int, float]]]
#: A stack: a context manager serving an echo, giving (URL, session).
Stack = Callable[[], AbstractAsyncContextManager[tuple[str, Session]]]
SIZES = {"16 B": 16, "1 MiB": 1 << 20}
_LIMIT = 4 << 20


# -- hcore ------------------------------------------------------------------------


async def _echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    # Bounded by what the client sends.
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        await send({**message, "type": "websocket.send"})


def _hcore(
    networking: type[SystemNetworking] | type[EpollNetworking],
    versions: tuple[str, ...],
) -> Stack:
    @asynccontextmanager
    async def stack() -> AsyncIterator[tuple[str, Session]]:
        server = ASGIServer(
            _echo_app,
            networking=networking(),
            http3=False,
            websocket_deflate=False,
            websocket_max_message_size=_LIMIT,
            lifespan="off",
        )
        async with anyio.create_task_group() as group:
            [endpoint] = await group.start(server.serve, ["http://127.0.0.1:0"])

            async def session(
                url: str, payload: bytes, seconds: float
            ) -> tuple[int, float]:
                async with Client(
                    networking=networking(),
                    http_versions=versions,
                    http2_prior_knowledge=versions == ("2",),
                ) as client:
                    async with client.websocket(
                        url, deflate=False, max_message_size=_LIMIT
                    ) as ws:
                        count, start = 0, time.perf_counter()
                        deadline = start + seconds
                        # Bounded by the deadline.
                        while time.perf_counter() < deadline:
                            await ws.send_bytes(payload)
                            echoed = await ws.receive()
                            assert len(echoed) == len(payload)
                            count += 1
                        return count, time.perf_counter() - start

            try:
                yield f"ws://127.0.0.1:{endpoint.port}/echo", session
            finally:
                await server.shutdown(timeout=2)

    return stack


# -- websockets -----------------------------------------------------------------------


async def _websockets_echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


@asynccontextmanager
async def _websockets() -> AsyncIterator[tuple[str, Session]]:
    async with websockets_serve(
        _websockets_echo, "127.0.0.1", 0, compression=None, max_size=_LIMIT
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]

        async def session(
            url: str, payload: bytes, seconds: float
        ) -> tuple[int, float]:
            async with websockets_connect(url, compression=None, max_size=_LIMIT) as ws:
                count, start = 0, time.perf_counter()
                deadline = start + seconds
                # Bounded by the deadline.
                while time.perf_counter() < deadline:
                    await ws.send(payload)
                    echoed = await ws.recv()
                    assert len(echoed) == len(payload)
                    count += 1
                return count, time.perf_counter() - start

        yield f"ws://127.0.0.1:{port}/echo", session


# -- aiohttp --------------------------------------------------------------------------


async def _aiohttp_echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=_LIMIT)
    await ws.prepare(request)
    async for message in ws:
        if message.type is aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(message.data)
        elif message.type is aiohttp.WSMsgType.TEXT:
            await ws.send_str(message.data)
    return ws


@asynccontextmanager
async def _aiohttp() -> AsyncIterator[tuple[str, Session]]:
    application = web.Application()
    application.router.add_get("/echo", _aiohttp_echo)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    async def session(url: str, payload: bytes, seconds: float) -> tuple[int, float]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url, compress=0, max_msg_size=_LIMIT) as ws:
                count, start = 0, time.perf_counter()
                deadline = start + seconds
                # Bounded by the deadline.
                while time.perf_counter() < deadline:
                    await ws.send_bytes(payload)
                    echoed = await ws.receive()
                    assert len(echoed.data) == len(payload)
                    count += 1
                return count, time.perf_counter() - start

    try:
        yield f"ws://127.0.0.1:{port}/echo", session
    finally:
        await runner.cleanup()


# -- the run --------------------------------------------------------------------------

STACKS: dict[str, Stack] = {
    "hcore": _hcore(SystemNetworking, ("1.1",)),
    "hcore-epoll": _hcore(EpollNetworking, ("1.1",)),
    "hcore-h2c": _hcore(SystemNetworking, ("2",)),
    "websockets": _websockets,
    "aiohttp": _aiohttp,
}


async def _measure(
    stacks: list[str], runs: int, seconds: float
) -> dict[str, dict[str, list[float]]]:
    payloads = {label: os.urandom(size) for label, size in SIZES.items()}
    results: dict[str, dict[str, list[float]]] = {
        name: {label: [] for label in SIZES} for name in stacks
    }
    for run in range(runs):
        for name in stacks:
            async with STACKS[name]() as (url, session):
                for label, payload in payloads.items():
                    count, elapsed = await session(url, payload, seconds)
                    rate = count / elapsed
                    results[name][label].append(rate)
                    where = f"run {run + 1}/{runs} {name:<12} {label:>6}"
                    print(f"{where}: {rate:10.1f} msg/s", flush=True)
    return results


def _report(results: dict[str, dict[str, list[float]]]) -> dict[str, object]:
    medians = {
        name: {label: statistics.median(rates) for label, rates in sizes.items()}
        for name, sizes in results.items()
    }
    print()
    print(f"{'stack':<12} " + " ".join(f"{label + ' msg/s':>14}" for label in SIZES))
    for name, sizes in medians.items():
        print(f"{name:<12} " + " ".join(f"{sizes[label]:14.1f}" for label in SIZES))
    ratios: dict[str, dict[str, float]] = {}
    print()
    for ours in (name for name in medians if name.startswith("hcore")):
        for theirs in ("websockets", "aiohttp"):
            if theirs not in medians:
                continue
            key = f"{ours} / {theirs}"
            ratios[key] = {
                label: medians[ours][label] / medians[theirs][label] for label in SIZES
            }
            print(
                f"{key:<26} "
                + " ".join(f"{label}: {ratios[key][label]:5.2f}" for label in SIZES)
            )
    return {"runs": results, "medians": medians, "ratios": ratios}


def main() -> int:
    """Parse the arguments, run the stacks in turn, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs (median taken)")
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="length of each measurement"
    )
    parser.add_argument(
        "--stacks",
        default=",".join(STACKS),
        help=f"comma-separated, from {', '.join(STACKS)}",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    stacks = [name for name in args.stacks.split(",") if name]
    unknown = set(stacks) - set(STACKS)
    if unknown:
        parser.error(f"unknown stacks: {sorted(unknown)}")
    results = asyncio.run(_measure(stacks, args.runs, args.seconds))
    report = _report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
