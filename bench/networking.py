"""Benchmark: EpollNetworking against SystemNetworking (AnyIO's sockets).

Each configuration (event loop x backend x server) runs in a server process
of its own, pinned to CPU 0 while the load runs on CPU 1 (``taskset``);
this process loads them in turn, interleaving the runs so that noise from
other work on the machine spreads evenly:

- ``wrk``: ``wrk -t1 -c32 -d5s`` for a small response (requests/s);
- ``h1``: ``h2load --h1 -c50`` for a small response (requests/s);
- ``h2``: ``h2load -c8 -m16`` over HTTP/2 with prior knowledge (``hcore``
  server only; requests/s);
- ``download``: a 1 GiB response body read by a plain blocking socket (MB/s);
- ``upload``: a 1 GiB request body sent by a plain blocking socket (MB/s).

h2load gets a request count (``-n``) that takes about ``--duration``
seconds, set from a short warm-up run (``-D`` never reconnects, so it could
hide a server that closes connections); every request must succeed, and
wrk must see no socket error and no non-2xx answer.

Servers: ``raw`` answers directly on the networking backend's ByteStream (a
few lines of request parsing, so the figures are the backend's); ``hcore``
is our plain listener, :class:`hcore_io.connections.HTTPOverTCPListener`
with the HTTP/1.1 and HTTP/2 protocols and a tiny
:class:`~hcore_io.connections.HTTPConnection` handler, no ASGI (figures
include the protocol stacks).

Run ``python bench/networking.py --help``; bench/README.md shows examples.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1024 * 1024
SMALL_BODY = b"Hello, world!\n"
SMALL_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s"
    % (len(SMALL_BODY), SMALL_BODY)
)

# --------------------------------------------------------------------------
# Server side (runs in a child process: ``networking.py serve ...``)
# --------------------------------------------------------------------------


def _serve(loop: str, backend: str, server: str, transfer_size: int) -> None:
    import anyio
    from anyio.abc import ByteStream, SocketAttribute

    from hcore_io.networking import EpollNetworking, SystemNetworking

    networking = EpollNetworking() if backend == "epoll" else SystemNetworking()
    chunk = b"x" * CHUNK
    big_head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % transfer_size

    async def raw_handler(stream: ByteStream) -> None:
        buffer = b""
        async with stream:
            try:
                # One round per request; ends when the client leaves.
                while True:
                    # Bounded by the client's request head.
                    while (end := buffer.find(b"\r\n\r\n")) < 0:
                        buffer += await stream.receive(65536)
                    head, buffer = buffer[:end], buffer[end + 4 :]
                    if head.startswith(b"GET /big"):
                        await stream.send(big_head)
                        for _ in range(transfer_size // CHUNK):
                            await stream.send(chunk)
                    elif head.startswith(b"POST"):
                        match = re.search(rb"(?i)content-length: *(\d+)", head)
                        remaining = int(match.group(1)) if match else 0
                        remaining -= len(buffer)
                        buffer = b""
                        # Bounded by the announced body size.
                        while remaining > 0:
                            remaining -= len(await stream.receive(CHUNK))
                        await stream.send(SMALL_RESPONSE)
                    else:
                        await stream.send(SMALL_RESPONSE)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    async def run_server() -> None:
        if server == "raw":
            listener = await networking.listen_tcp(("127.0.0.1", 0))
            port = listener.extra(SocketAttribute.local_port)
            print(f"READY {port}", flush=True)
            await listener.serve(raw_handler)
        else:
            await _serve_hcore(networking, transfer_size)

    async def main() -> None:
        # SIGTERM ends the server cleanly, so that a profile gets written.
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_server)
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    break

    profile_dir = os.environ.get("HCORE_BENCH_PROFILE")
    if not profile_dir:
        anyio.run(main, backend=loop)
        return
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="disabled")
    with profiler:
        anyio.run(main, backend=loop)
    path = Path(profile_dir) / f"{server}-{loop}-{backend}.txt"
    path.write_text(profiler.output_text(unicode=False, show_all=False))


async def _serve_hcore(networking: object, transfer_size: int) -> None:
    from hcore import HCoreError
    from hcore.events import ConnectionTerminated, DataReceived, HeadersReceived
    from hcore.protocols.http1 import HTTP1ServerFactory
    from hcore.protocols.http2 import HTTP2ServerFactory
    from hcore_io.connections import (
        HTTPConnection,
        HTTPOverTCPListener,
        PriorKnowledgeHTTPFactory,
    )
    from hcore_io.networking import TCPServerNetworking

    assert isinstance(networking, TCPServerNetworking)
    chunk = b"x" * CHUNK
    headers = ((b":status", b"200"), (b"content-type", b"text/plain"))

    async def handler(connection: HTTPConnection) -> None:
        # A client leaving mid-response (wrk and h2load do, when they stop)
        # ends the connection quietly.
        try:
            await answer(connection)
        except HCoreError:
            return

    async def answer(connection: HTTPConnection) -> None:
        # One event per round; ends with the connection.
        while True:
            event = await connection.receive_event()
            if isinstance(event, ConnectionTerminated):
                return
            if isinstance(event, HeadersReceived) and event.end_stream:
                path = dict(event.headers).get(b":path", b"/")
                if path == b"/big":
                    big = (*headers, (b"content-length", b"%d" % transfer_size))
                    await connection.send_headers(event.stream_id, big)
                    for _ in range(transfer_size // CHUNK - 1):
                        await connection.send_data(event.stream_id, chunk)
                    await connection.send_data(event.stream_id, chunk, end_stream=True)
                else:
                    small = (*headers, (b"content-length", b"%d" % len(SMALL_BODY)))
                    await connection.send_headers(event.stream_id, small)
                    await connection.send_data(
                        event.stream_id, SMALL_BODY, end_stream=True
                    )
            elif isinstance(event, DataReceived) and event.end_stream:
                small = (*headers, (b"content-length", b"%d" % len(SMALL_BODY)))
                await connection.send_headers(event.stream_id, small)
                await connection.send_data(event.stream_id, SMALL_BODY, end_stream=True)

    factory = PriorKnowledgeHTTPFactory(HTTP1ServerFactory(), HTTP2ServerFactory())
    listener = await HTTPOverTCPListener.create(
        factory, networking, local_address=("127.0.0.1", 0)
    )
    print(f"READY {listener.local_addresses[0][1]}", flush=True)
    await listener.serve(handler)


# --------------------------------------------------------------------------
# Load side
# --------------------------------------------------------------------------


@dataclass
class Server:
    loop: str
    backend: str
    kind: str
    process: subprocess.Popen[str]
    port: int
    results: dict[str, list[float]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.loop}/{self.backend}"

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def _pinned(cpu: int | None, command: list[str]) -> list[str]:
    return command if cpu is None else ["taskset", "-c", str(cpu), *command]


def _start(args: argparse.Namespace, loop: str, backend: str, kind: str) -> Server:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        env["HCORE_BENCH_PROFILE"] = str(args.profile)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "serve",
        loop,
        backend,
        kind,
        str(args.size),
    ]
    process = subprocess.Popen(
        _pinned(args.server_cpu, command),
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"{kind}/{loop}/{backend} server did not start")
    # taskset execs the server: the pid is the server's.
    return Server(loop, backend, kind, process, int(line.split()[1]))


def _h2load_once(
    server: Server, args: argparse.Namespace, http1: bool, requests: int
) -> float:
    command = ["h2load", "-n", str(requests), "-t", "1"]
    if http1:
        command += ["--h1", "-c", str(args.clients)]
    else:
        command += ["-c", str(args.h2_clients), "-m", str(args.h2_streams)]
    command.append(f"http://127.0.0.1:{server.port}/")
    output = subprocess.run(
        _pinned(args.load_cpu, command),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    done = re.search(
        r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", output
    )
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", output)
    if done is None or rate is None or int(done.group(1)) != requests:
        raise RuntimeError(f"h2load failed against {server.name}:\n{output}")
    return float(rate.group(1))


def _h2load(
    server: Server, args: argparse.Namespace, http1: bool
) -> tuple[float, float]:
    """(requests/s, requests) of a run of ``--requests`` or ~``--duration`` s."""
    count = args.requests
    if not count:
        warm = 2000
        rate = _h2load_once(server, args, http1, warm)
        count = max(warm, int(round(rate * args.duration, -3)))
    return _h2load_once(server, args, http1, count), count


def _wrk(server: Server, args: argparse.Namespace) -> tuple[float, float]:
    """(requests/s, requests) of ``wrk -t1 -cN -dS``."""
    seconds = max(1, round(args.duration))
    command = ["wrk", "-t1", f"-c{args.wrk_connections}", f"-d{seconds}s"]
    command.append(f"http://127.0.0.1:{server.port}/")
    output = subprocess.run(
        _pinned(args.load_cpu, command),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count = re.search(r"(\d+) requests in", output)
    if (
        rate is None
        or count is None
        or "Socket errors" in output
        or "Non-2xx" in output
    ):
        raise RuntimeError(f"wrk failed against {server.name}:\n{output}")
    return float(rate.group(1)), float(count.group(1))


def _read_head(sock: socket.socket) -> bytes:
    head = b""
    # Bounded by the server's response head.
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        if not data:
            raise RuntimeError("server closed during the response head")
        head += data
    return head


def _download(server: Server, size: int) -> float:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        buffer = bytearray(CHUNK)
        start = time.perf_counter()
        sock.sendall(b"GET /big HTTP/1.1\r\nhost: bench\r\n\r\n")
        head = _read_head(sock)
        received = len(head) - head.index(b"\r\n\r\n") - 4
        # Bounded by the body size.
        while received < size:
            count = sock.recv_into(buffer)
            if not count:
                raise RuntimeError("server closed during the body")
            received += count
        elapsed = time.perf_counter() - start
    return size / elapsed / 1e6


def _upload(server: Server, size: int) -> float:
    chunk = memoryview(b"u" * CHUNK)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        start = time.perf_counter()
        sock.sendall(
            b"POST /sink HTTP/1.1\r\nhost: bench\r\ncontent-length: %d\r\n\r\n" % size
        )
        for _ in range(size // CHUNK):
            sock.sendall(chunk)
        _read_head(sock)
        elapsed = time.perf_counter() - start
    return size / elapsed / 1e6


#: (test, CPU unit, measure returning (figure, work in millions of requests
#: or in GiB)).
Test = tuple[str, str, Callable[[], tuple[float, float]]]


def _tests(args: argparse.Namespace, server: Server) -> list[Test]:
    """The tests of ``--tests`` that apply to the server's kind."""
    wanted = set(args.tests.split(","))
    gib = args.size / (1 << 30)

    def per_million(
        measure: Callable[[], tuple[float, float]],
    ) -> Callable[[], tuple[float, float]]:
        def run() -> tuple[float, float]:
            rate, requests = measure()
            return rate, requests / 1e6

        return run

    tests: list[Test] = []
    if "wrk" in wanted:
        tests.append(("wrk req/s", "us/req", per_million(lambda: _wrk(server, args))))
    if "h1" in wanted:
        tests.append(
            ("h1 req/s", "us/req", per_million(lambda: _h2load(server, args, True)))
        )
    if "h2" in wanted and server.kind == "hcore":
        tests.append(
            ("h2 req/s", "us/req", per_million(lambda: _h2load(server, args, False)))
        )
    if "download" in wanted:
        tests.append(
            ("download MB/s", "s/GiB", lambda: (_download(server, args.size), gib))
        )
    if "upload" in wanted:
        tests.append(
            ("upload MB/s", "s/GiB", lambda: (_upload(server, args.size), gib))
        )
    return tests


def _cell(values: list[float] | None) -> str:
    if not values:
        return "—"
    median = statistics.median(values)
    digits = 0 if median >= 100 else 2
    return f"{median:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def _report(servers: Sequence[Server]) -> dict[str, object]:
    rows: dict[str, object] = {}
    lines = [
        "| test | server/loop | AnyIO (system) | epoll | epoll / AnyIO |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    by_key = {(s.kind, s.loop, s.backend): s for s in servers}
    for kind, loop in sorted({(s.kind, s.loop) for s in servers}):
        system = by_key.get((kind, loop, "system"))
        epoll = by_key.get((kind, loop, "epoll"))
        either = system or epoll
        assert either is not None  # the pair was made from these servers
        for test in either.results:
            a = system.results[test] if system else []
            b = epoll.results[test] if epoll else []
            ratio = statistics.median(b) / statistics.median(a) if a and b else None
            lines.append(
                f"| {test} | {kind}/{loop} | {_cell(a)} | {_cell(b)} | "
                + (f"{ratio:.2f}" if ratio is not None else "—")
                + " |"
            )
            rows[f"{test} {kind}/{loop}"] = {
                "system": {
                    "median": statistics.median(a) if a else None,
                    "min": min(a, default=None),
                    "max": max(a, default=None),
                    "runs": a,
                },
                "epoll": {
                    "median": statistics.median(b) if b else None,
                    "min": min(b, default=None),
                    "max": max(b, default=None),
                    "runs": b,
                },
                "ratio": ratio,
            }
    print("\nMedian of the runs (min-max); CPU rows are the server's CPU time\n")
    print("\n".join(lines))
    return rows


def _machine() -> dict[str, object]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    now = datetime.datetime.now(datetime.UTC)
    return {
        "date": now.isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": sys.version.split()[0],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per test (median)")
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds per wrk/h2load run"
    )
    parser.add_argument(
        "--requests", type=int, default=0, help="h2load -n (default: ~--duration)"
    )
    parser.add_argument("--clients", type=int, default=50, help="h2load --h1 -c")
    parser.add_argument("--h2-clients", type=int, default=8, help="h2load -c (h2)")
    parser.add_argument("--h2-streams", type=int, default=16, help="h2load -m (h2)")
    parser.add_argument("--wrk-connections", type=int, default=32, help="wrk -c")
    parser.add_argument("--size", type=int, default=1 << 30, help="transfer bytes")
    parser.add_argument("--loops", default="asyncio,trio")
    parser.add_argument("--backends", default="system,epoll")
    parser.add_argument("--servers", default="raw,hcore", help="raw and/or hcore")
    parser.add_argument("--server-cpu", type=int, default=0, help="taskset CPU")
    parser.add_argument("--load-cpu", type=int, default=1, help="taskset CPU")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench" / "results" / "networking.json",
        help="where to write the results (default: %(default)s)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="profile each server with pyinstrument, writing DIR/<server>.txt",
    )
    parser.add_argument(
        "--tests",
        default="wrk,h2,download,upload",
        help="which of wrk, h1, h2, download, upload to run",
    )
    args = parser.parse_args(argv)
    for tool in ("wrk", "h2load", "taskset"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is missing: run bench/setup")
    if args.no_pin:
        args.server_cpu = args.load_cpu = None
    elif hasattr(os, "sched_setaffinity"):
        # The download and upload clients run in this process.
        os.sched_setaffinity(0, {args.load_cpu})
    args.size -= args.size % CHUNK
    servers = [
        _start(args, loop, backend, kind)
        for kind in args.servers.split(",")
        for loop in args.loops.split(",")
        for backend in args.backends.split(",")
    ]
    try:
        for run in range(1, args.runs + 1):
            for server in servers:
                for test, unit, measure in _tests(args, server):
                    cpu = server.cpu_seconds()
                    value, work = measure()
                    cpu = (server.cpu_seconds() - cpu) / work
                    server.results.setdefault(test, []).append(value)
                    cpu_test = f"{test.split()[0]} CPU {unit}"
                    server.results.setdefault(cpu_test, []).append(cpu)
                    print(
                        f"run {run} {server.name:<24} {test:<14} {value:10.1f}"
                        f"   server {cpu_test} {cpu:.2f}",
                        flush=True,
                    )
    finally:
        for server in servers:
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=60)
    rows = _report(servers)
    document = {"machine": _machine(), "options": vars(args), "results": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2, default=str))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _serve(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(main())
