"""Profile ``hcore server`` under load with py-spy; print the top entries.

The server (:mod:`bench.hello_app`, pinned to CPU 0) is loaded by ``wrk
-t1 -c32`` (HTTP/1.1) or ``h2load -c8 -m16`` (h2c) on CPU 1 while
``py-spy record --format raw`` samples it; the collapsed stacks are then
summed per function:

- *self*: samples in which the function was running (the leaf frame);
- *total*: samples in which the function was anywhere on the stack.

Both are shown as a percentage of all samples.  The raw stacks are kept
(``--raw``) for a flame graph.

Run ``python bench/profile_server.py --help``; bench/README.md shows examples.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
APP = "bench.hello_app:app"
_LINE = re.compile(r":\d+\)$")
Counter = collections.Counter[str]


def _server_command(args: argparse.Namespace, port: int) -> list[str]:
    endpoint = f"http://127.0.0.1:{port}"
    options = [f"--networking={args.networking}", f"--loop={args.loop}"]
    options += [f"--http1-implementation={args.http1_impl}"]
    options += ["--no-access-log", "--log-level=warning"]
    return [str(BIN / "hcore"), "server", APP, endpoint, *options]


def _load_command(args: argparse.Namespace, port: int, seconds: int) -> list[str]:
    url = f"http://127.0.0.1:{port}/"
    if args.load == "h1":
        command = ["wrk", "-t1", "-c32", f"-d{seconds}s", url]
    else:
        command = ["h2load", "-t1", "-c8", "-m16", f"-D{seconds}", url]
    return ["taskset", "-c", "1", *command]


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    # Bounded by the deadline.
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server not listening on port {port}")


def _function(frame: str) -> str:
    # "name (path/file.py:123)" -> "name (path/file.py)"
    return _LINE.sub(")", frame)


def _package(function: str) -> str:
    # "name (hcore_io/connections/_driver.py)" -> "hcore_io/connections"
    path = function.rsplit(" (", 1)[-1].rstrip(")")
    parts = path.split("/")
    if parts[0] in ("hcore", "hcore_io"):
        return "/".join(parts[:2]) if len(parts) > 2 else parts[0]
    return parts[0] if len(parts) > 1 else path.split(":")[0]


def summarise(raw: str, top: int) -> tuple[int, list[tuple[str, int, int]], Counter]:
    """(samples, [(function, self, total)] by self samples, self by package).

    Only the event loop's thread counts: stacks of other threads (an idle
    thread pool worker, which py-spy cannot always tell idle here) are left
    out.
    """
    own: Counter = collections.Counter()
    total: Counter = collections.Counter()
    packages: Counter = collections.Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_function(frame) for frame in stack.split(";")]
        if "(threading.py" in frames[0]:
            continue
        count = int(count_text)
        samples += count
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for function in set(frames):
            total[function] += count
    rows = [(f, n, total[f]) for f, n in own.most_common(top)]
    return samples, rows, packages


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", choices=("h1", "h2c"), default="h1")
    parser.add_argument("--networking", choices=("system", "epoll"), default="system")
    parser.add_argument("--http1-impl", default="h11")
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop", "trio"), default="asyncio"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds sampled")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples/s")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(BIN / "py-spy")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        ["taskset", "-c", "0", *_server_command(args, port)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        _wait_listening(port)
        load = subprocess.Popen(
            _load_command(args, port, args.duration + 3),
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)
        with tempfile.TemporaryDirectory() as tmp:
            raw_path = args.raw or Path(tmp) / "raw.txt"
            subprocess.run(
                [
                    py_spy,
                    "record",
                    "--format=raw",
                    f"--output={raw_path}",
                    f"--pid={server.pid}",
                    f"--duration={args.duration}",
                    f"--rate={args.rate}",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            raw = Path(raw_path).read_text()
        output, _ = load.communicate(timeout=60)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    rate = re.search(
        r"Requests/sec:\s+([\d.]+)|finished in [\d.]+\w+, ([\d.]+) req/s", output
    )
    samples, rows, packages = summarise(raw, args.top)
    figure = next((g for g in rate.groups() if g), "?") if rate else "?"
    print(
        f"hcore server, {args.load} load, networking={args.networking}, "
        f"http1={args.http1_impl}, loop={args.loop}: {samples} samples, "
        f"{figure} req/s while sampled\n"
    )
    print("| # | function (file) | self % | total % |")
    print("| ---: | --- | ---: | ---: |")
    for number, (function, own, total) in enumerate(rows, 1):
        function = function.replace("|", "\\|")
        print(
            f"| {number} | `{function}` | {100 * own / samples:.1f} | "
            f"{100 * total / samples:.1f} |"
        )
    print("\nSelf time by package (of the leaf frame's file)\n")
    print("| package | self % |")
    print("| --- | ---: |")
    for package, count in packages.most_common(12):
        print(f"| `{package}` | {100 * count / samples:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
