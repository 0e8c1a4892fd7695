"""Soak test: ``hcore server`` under a long mixed load, watched for errors and memory.

Runs ``hcore server`` (a subprocess, this module's :func:`app`) on an
``https`` endpoint (HTTP/1.1 and HTTP/2 over TLS, HTTP/3 over QUIC) and
drives ``--requests`` requests at it with :class:`hcore_io.client.Client`,
``--tasks`` concurrent tasks per HTTP version, one client per version.  The
mix, per request:

- most are ``GET /`` (a 13-byte body);
- 4 % are ``POST /echo`` with a 4 KiB body, echoed back and checked;
- *aborted* (3 %): ``GET /slow`` (the server waits 20 ms) cancelled after 2 ms,
  so the client gives the stream up mid-request (a reset on HTTP/2 and
  HTTP/3, a closed connection on HTTP/1.1);
- *reset* (3 %): ``GET /big`` (256 KiB) whose response is closed after its head,
  the body unread (the client resets the stream, or closes an HTTP/1.1
  connection).

``--abort-rate``, ``--reset-rate`` and ``--abort-versions`` change the
mix.  A request (or the clients' closing) still running ``--hang-after``
seconds past the end is counted as *hung*, and the soak then reports and
exits: a hang may sit in a wait that cancellation does not reach.

Errors are counted by kind (the exception's class, or ``status-NNN``, or
``bad-body``); aborts and resets are expected and counted apart.  The
server's resident set size is read from ``/proc`` after a warm-up
(``--warmup`` requests), at the middle and at the end.

Usage (from the repository root)::

    python bench/soak.py --requests 1000000 --tasks 4

The report is printed as JSON (and written to ``--output`` if given).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

_HELLO = b"Hello, world!"
_BIG = b"x" * (256 * 1024)
_ECHO = bytes(range(256)) * 16


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """The soak's application: ``/``, ``/echo``, ``/slow`` and ``/big``."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            # Bounded: startup, then shutdown.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return
    import anyio

    path = scope["path"]
    body = _HELLO
    if path == "/echo":
        parts = []
        # Bounded by the request body.
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(parts)
    elif path == "/slow":
        await anyio.sleep(0.02)
    elif path == "/big":
        body = _BIG
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _free_port() -> int:
    # Bounded: a few tries at a port free on both TCP and UDP.
    for _ in range(20):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


class Soak:
    """The load generator's state: counters and the request budget."""

    def __init__(self, total: int, warmup: int, pid: int, duration: float) -> None:
        self.total = total
        self.deadline = time.monotonic() + duration
        self.warmup = warmup
        self.pid = pid
        self.issued = 0
        self.done = 0
        self.ok: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.expected: Counter[str] = Counter()
        self.rss: dict[str, int] = {"launch": _rss_kib(pid)}
        self.marks: dict[str, float] = {}
        self.started = time.monotonic()
        self.every = max(500, total // 50)
        #: (requests done, server RSS in KiB), every ``every`` requests.
        self.samples: list[tuple[int, int]] = []
        #: The requests in flight: (version, kind, start) by a token.
        self.in_flight: dict[object, tuple[str, str, float]] = {}

    def take(self) -> int | None:
        if self.issued >= self.total or time.monotonic() > self.deadline:
            return None
        self.issued += 1
        return self.issued

    def finish(self) -> None:
        self.done += 1
        if self.done == self.warmup:
            self.rss["start"] = _rss_kib(self.pid)
            self.marks["start"] = time.monotonic()
        if self.done % self.every == 0:
            rate = self.done / (time.monotonic() - self.started)
            rss = _rss_kib(self.pid)
            self.samples.append((self.done, rss))
            print(
                f"{self.done} requests, {rate:.0f}/s, rss {rss} KiB, "
                f"errors {dict(self.errors)}",
                file=sys.stderr,
                flush=True,
            )


async def _one(
    client: Any,
    base: str,
    version: str,
    soak: Soak,
    rng: random.Random,
    rates: tuple[float, float],
) -> None:
    import anyio

    from hcore_io.client import Timeouts

    abort_rate, reset_rate = rates
    roll = rng.random()
    aborted, reset = roll < abort_rate, abort_rate <= roll < abort_rate + reset_rate
    kind = (
        "aborted" if aborted else "reset" if reset else "echo" if roll > 0.96 else "get"
    )
    token = object()
    soak.in_flight[token] = (version, kind, time.monotonic())
    try:
        if aborted:
            with anyio.move_on_after(0.002):
                await client.get(base + "/slow")
                kind = "aborted-too-late"
            soak.expected[f"{version} {kind}"] += 1
            return
        if reset:
            async with client.stream("GET", base + "/big") as response:
                if response.status != 200:
                    soak.errors[f"{version} status-{response.status}"] += 1
                    return
            soak.expected[f"{version} reset"] += 1
            return
        if kind == "echo":
            response = await client.post(base + "/echo", content=_ECHO)
            if response.status != 200 or response.content != _ECHO:
                soak.errors[f"{version} bad-echo"] += 1
                return
            soak.ok[version] += 1
            return
        response = await client.get(
            base + "/", timeouts=Timeouts(connect=10, read=30, write=30)
        )
        if response.status != 200 or response.content != _HELLO:
            soak.errors[f"{version} status-{response.status}"] += 1
            return
        soak.ok[version] += 1
    except Exception as exc:  # every failure is counted, by kind
        soak.errors[f"{version} {type(exc).__name__}: {str(exc)[:80]}"] += 1
    finally:
        del soak.in_flight[token]
        soak.finish()


async def _drive(args: argparse.Namespace, port: int, cafile: str, pid: int) -> Soak:
    import anyio

    from hcore import ClientTLSConfig
    from hcore_io.client import Client

    soak = Soak(args.requests, args.warmup, pid, args.duration)
    base = f"https://localhost:{port}"
    tls = ClientTLSConfig(cafile=cafile)
    versions = [v for v in ("1.1", "2", "3") if v in args.versions.split(",")]
    clients = {
        version: Client(
            tls_config=tls,
            http_versions=(version,),
            max_connections=args.tasks * 2,
            max_connections_per_host=args.tasks * 2,
            retries=0,
        )
        for version in versions
    }

    abort_versions = set(args.abort_versions.split(","))

    async def worker(version: str, seed: int) -> None:
        rng = random.Random(seed)
        client = clients[version]
        abort_rate = args.abort_rate if version in abort_versions else 0.0
        rates = (abort_rate, args.reset_rate)
        # Bounded by the request budget.
        while soak.take() is not None:
            await _one(client, base, version, soak, rng, rates)

    async def watchdog() -> None:
        # A request, or the clients' closing, still running this long past
        # its deadline is counted as hung; the soak then ends with what it
        # has (a hang in a shielded wait would not yield to cancellation).
        # Bounded: the process exits.
        while True:
            await anyio.sleep(5)
            now = time.monotonic()
            if now < soak.deadline + args.hang_after:
                stale = [k for k in soak.in_flight.values() if now - k[2] > 120]
                if not stale:
                    continue
            for version, kind, start in soak.in_flight.values():
                if now - start > args.hang_after:
                    soak.errors[f"{version} hung ({kind}, {now - start:.0f} s)"] += 1
            if not soak.in_flight:
                soak.errors["hung closing the clients"] += 1
            _finish(soak, pid)
            _report(args, soak, exit_code=None)
            os.kill(pid, 15)
            os._exit(2)

    async with anyio.create_task_group() as outer:
        outer.start_soon(watchdog)
        try:
            async with anyio.create_task_group() as group:
                for version in versions:
                    for index in range(args.tasks):
                        group.start_soon(worker, version, hash((version, index)))
        finally:
            for client in clients.values():
                await client.aclose()
        outer.cancel_scope.cancel()
    _finish(soak, pid)
    return soak


def _finish(soak: Soak, pid: int) -> None:
    soak.rss["end"] = _rss_kib(pid)
    if soak.samples:
        # The sample nearest the middle of the measured part.
        middle = (soak.warmup + soak.done) / 2
        soak.rss["middle"] = min(soak.samples, key=lambda s: abs(s[0] - middle))[1]
    soak.marks["end"] = time.monotonic()


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    # Bounded by the deadline.
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("hcore server exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("hcore server did not start")


def _report(args: argparse.Namespace, soak: Soak, exit_code: int | None) -> None:
    """Print the report (and write it to ``--output``)."""
    elapsed = soak.marks["end"] - soak.started
    measured = soak.marks["end"] - soak.marks.get("start", soak.started)
    start = soak.rss.get("start", soak.rss["launch"])
    report = {
        "requests": soak.done,
        "tasks_per_version": args.tasks,
        "seconds": round(elapsed, 1),
        "requests_per_second": round(soak.done / elapsed, 1),
        "requests_per_second_after_warmup": round(
            (soak.done - args.warmup) / measured, 1
        )
        if measured > 0
        else None,
        "ok": dict(soak.ok),
        "expected": dict(soak.expected),
        "errors": dict(soak.errors),
        "unexpected_errors": sum(soak.errors.values()),
        "rss_kib": soak.rss,
        "rss_samples_kib": soak.samples,
        "rss_growth_percent_start_to_end": round(
            100 * (soak.rss["end"] - start) / start, 2
        ),
        "server_exit_code": exit_code,
    }
    text = json.dumps(report, indent=2)
    print(text, flush=True)
    if args.output:
        Path(args.output).write_text(text + "\n")


def main() -> int:
    """Run the soak; print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=4, help="tasks per HTTP version")
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="requests before the start RSS is read (default: 5%% of "
        "--requests, at least 5,000): RSS settles only after tens of "
        "thousands of requests (allocator arenas, caches)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=float("inf"),
        help="stop issuing requests after this many seconds",
    )
    parser.add_argument("--versions", default="1.1,2,3")
    parser.add_argument(
        "--abort-rate", type=float, default=0.03, help="share of aborted requests"
    )
    parser.add_argument(
        "--abort-versions",
        default="1.1,2,3",
        help="the HTTP versions whose requests are aborted (comma-separated)",
    )
    parser.add_argument(
        "--reset-rate", type=float, default=0.03, help="share of reset responses"
    )
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    parser.add_argument("--output", help="write the JSON report here too")
    parser.add_argument(
        "--hang-after",
        type=float,
        default=60.0,
        help="seconds past its deadline a request or the clients' closing "
        "counts as hung (the soak then ends)",
    )
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = max(5000, args.requests // 20)
    args.warmup = min(args.warmup, args.requests // 10)

    import trustme

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as directory:
        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        certfile = os.path.join(directory, "cert.pem")
        cafile = os.path.join(directory, "ca.pem")
        cert.private_key_and_cert_chain_pem.write_to_path(certfile)
        ca.cert_pem.write_to_path(cafile)
        port = _free_port()
        command = [
            sys.executable,
            "-c",
            "from hcore_io.cli import main; raise SystemExit(main())",
            "server",
            "bench.soak:app",
            f"https://127.0.0.1:{port}",
            "--cert",
            certfile,
            "--no-access-log",
            "--log-level",
            "error",
        ]
        server = subprocess.Popen(command, cwd=root)
        try:
            _wait_ready(port, server)
            import anyio

            soak = anyio.run(
                _drive, args, port, cafile, server.pid, backend=args.backend
            )
        finally:
            server.terminate()
            server.wait(timeout=60)
    _report(args, soak, exit_code=server.returncode)
    return 0 if not soak.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
