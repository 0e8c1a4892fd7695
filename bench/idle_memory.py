"""Benchmark: memory per idle keep-alive connection.

Each server (``hcore server`` on both networking backends, and on epoll
with the ``httptools`` HTTP/1.1 implementation; hypercorn, uvicorn) serves
:mod:`bench.hello_app`; this script opens ``--connections`` (10,000)
connections to it, makes one HTTP/1.1 request on each (so that
each is an established keep-alive connection, past the server's first
request-head timeout) and leaves them idle.  Memory per connection is the
growth of the server's resident set size (RSS, summed over its process
tree, from ``/proc``) divided by the number of connections.  Before the
measurement every connection is checked to be still open (a sample makes a
second request).

The file-descriptor limit (RLIMIT_NOFILE) of this process, and so of the
servers it starts, is raised as needed; the servers' keep-alive timeouts are
set well above the run's length, and hcore's connection cap above N.

Run ``python bench/idle_memory.py --help``; bench/README.md shows examples.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
APP = "bench.hello_app:app"
REQUEST = b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n"
IDLE_TIMEOUT = 3600

#: Builds a server command from its port and the number of connections.
Command = Callable[[int, int], list[str]]


def _hcore(networking: str, http1: str = "h11") -> Command:
    def command(port: int, connections: int) -> list[str]:
        options = [
            f"--networking={networking}",
            f"--http1-implementation={http1}",
            f"--max-connections={connections + 100}",
            f"--keep-alive-timeout={IDLE_TIMEOUT}",
            "--no-access-log",
            "--log-level=warning",
        ]
        endpoint = f"http://127.0.0.1:{port}"
        return [str(BIN / "hcore"), "server", APP, endpoint, *options]

    return command


def _hypercorn(port: int, connections: int) -> list[str]:
    return [
        str(BIN / "hypercorn"),
        f"--bind=127.0.0.1:{port}",
        f"--keep-alive={IDLE_TIMEOUT}",
        "--backlog=4096",
        "--log-level=warning",
        APP,
    ]


def _uvicorn(http: str) -> Command:
    def command(port: int, connections: int) -> list[str]:
        return [
            str(BIN / "uvicorn"),
            APP,
            "--host=127.0.0.1",
            f"--port={port}",
            f"--http={http}",
            "--loop=asyncio",
            f"--timeout-keep-alive={IDLE_TIMEOUT}",
            "--backlog=4096",
            "--no-access-log",
            "--log-level=warning",
        ]

    return command


SERVERS: dict[str, Callable[[], Command]] = {
    "hcore": lambda: _hcore("system"),
    "hcore+epoll": lambda: _hcore("epoll"),
    "hcore+epoll+httptools": lambda: _hcore("epoll", "httptools"),
    "hypercorn": lambda: _hypercorn,
    "uvicorn+h11": lambda: _uvicorn("h11"),
    "uvicorn+httptools": lambda: _uvicorn("httptools"),
}


def _raise_nofile(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        # Only root can raise the hard limit.
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _tree(pid: int) -> list[int]:
    """The process and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    # Bounded by the number of processes.
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _rss_bytes(pid: int) -> int:
    total = 0
    for member in _tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def _open_fds(pid: int) -> int:
    total = 0
    for member in _tree(pid):
        try:
            total += len(os.listdir(f"/proc/{member}/fd"))
        except OSError:
            continue
    return total


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _request(reader, writer)
    return reader, writer


async def _hold(
    port: int, count: int, batch: int, pid: int, settle: float
) -> dict[str, float]:
    """Open ``count`` idle connections; measure; close them."""
    await _connect_and_close(port)
    await asyncio.sleep(settle)
    before = _rss_bytes(pid)
    fds_before = _open_fds(pid)
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    started = time.perf_counter()
    try:
        # Bounded by count / batch.
        for start in range(0, count, batch):
            size = min(batch, count - start)
            connections += await asyncio.gather(*(_connect(port) for _ in range(size)))
        opened = time.perf_counter() - started
        await asyncio.sleep(settle)
        after = _rss_bytes(pid)
        fds_after = _open_fds(pid)
        # Every connection still open (nothing to read, no EOF), and a sample
        # still answers.
        for reader, _ in connections:
            if reader.at_eof():
                raise RuntimeError("the server closed an idle connection")
        step = max(1, count // 100)
        await asyncio.gather(*(_request(*pair) for pair in connections[::step]))
    finally:
        for _, writer in connections:
            writer.close()
    return {
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "kib_per_connection": (after - before) / count / 1024,
        "server_fds_added": fds_after - fds_before,
        "open_seconds": opened,
    }


async def _connect_and_close(port: int) -> None:
    _, writer = await _connect(port)
    writer.close()


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    # Bounded by the deadline.
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server not listening on port {port}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _measure(args: argparse.Namespace, name: str, command: Command) -> dict[str, float]:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        command(port, args.connections),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        try:
            _wait_listening(port, process)
            result = asyncio.run(
                _hold(port, args.connections, args.batch, process.pid, args.settle)
            )
        except Exception:
            process.kill()
            _, stderr = process.communicate()
            print(stderr.decode(errors="replace")[-3000:], file=sys.stderr)
            raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return result


def _machine() -> dict[str, object]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": sys.version.split()[0],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--batch", type=int, default=100, help="connections opened at once"
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds to wait before measuring"
    )
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help="comma-separated names"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench" / "results" / "idle_memory.json",
        help="where to write the results (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    # This process holds one descriptor per connection, the server another;
    # the servers inherit the limit.
    _raise_nofile(args.connections + 1024)
    names = args.servers.split(",")
    commands = {name: SERVERS[name]() for name in names}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for run in range(1, args.runs + 1):
        for name in names:
            result = _measure(args, name, commands[name])
            results[name].append(result)
            print(
                f"run {run} {name:<20} {result['kib_per_connection']:8.1f} KiB/conn"
                f"  RSS {result['rss_before_mib']:.1f} -> "
                f"{result['rss_after_mib']:.1f} MiB"
                f"  +{result['server_fds_added']:.0f} fds",
                flush=True,
            )
    per_connection = {
        name: [r["kib_per_connection"] for r in runs] for name, runs in results.items()
    }
    print(
        f"\nMemory per idle keep-alive connection ({args.connections:,} "
        "connections): median of the runs (min-max)\n"
    )
    print("| server | KiB per connection | RSS before -> after (MiB, median) |")
    print("| --- | ---: | ---: |")
    for name, values in per_connection.items():
        before = statistics.median(r["rss_before_mib"] for r in results[name])
        after = statistics.median(r["rss_after_mib"] for r in results[name])
        print(
            f"| {name} | {statistics.median(values):.1f} "
            f"({min(values):.1f}-{max(values):.1f}) | {before:.0f} -> {after:.0f} |"
        )
    ratios: dict[str, float] = {}
    print("\n| ratio | memory per connection |\n| --- | ---: |")
    for ours in (n for n in names if n.startswith("hcore")):
        for peer in (n for n in names if not n.startswith("hcore")):
            ratio = statistics.median(per_connection[ours]) / statistics.median(
                per_connection[peer]
            )
            ratios[f"{ours} / {peer}"] = ratio
            print(f"| {ours} / {peer} | {ratio:.2f} |")
    print("(below 1: hcore uses less memory per connection)")
    document = {
        "machine": _machine(),
        "options": vars(args),
        "results": {
            name: {
                "median_kib_per_connection": statistics.median(per_connection[name]),
                "min": min(per_connection[name]),
                "max": max(per_connection[name]),
                "runs": runs,
            }
            for name, runs in results.items()
        },
        "ratios": ratios,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2, default=str))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
