"""Benchmark: ``hcore server`` beside uvicorn, hypercorn and hface.

Every server serves :mod:`bench.hello_app` (a 13-byte ``Hello, world!``),
pinned to CPU 0 while the load generator runs on CPU 1 (``taskset``):

- ``h1``: ``wrk -t1 -c32 -d5s`` over HTTP/1.1;
- ``h2c``: ``h2load -c8 -m16`` over HTTP/2 with prior knowledge;
- ``h2tls``: ``h2load -c8 -m16`` over HTTP/2 over TLS (ALPN), with a
  certificate this script makes with trustme.

``h2load`` gets a request count (``-n``), not a duration (``-D`` never
reconnects, so a server closing connections after N requests would look
slow instead of failing): a one-second warm-up measures the server's rate
and the count is set to take about ``--duration`` seconds.  Failed requests
(h2load's failed/errored/timeout, wrk's socket errors and non-2xx answers)
are reported beside each figure.  Hypercorn's 1,000-requests-per-connection
cap (``keep_alive_max_requests``) is lifted by its configuration file.

Each run starts every server afresh, one after the other, so that noise from
other work on the machine spreads over all of them; the table gives the
median requests/s of the runs with their min and max, then hcore's ratio to
each peer (above 1: hcore serves more requests per second).

Run ``python bench/server_bench.py --help``; bench/README.md shows examples.
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
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
APP = "bench.hello_app:app"
LOADS = ("h1", "h2c", "h2tls")
LOAD_TITLES = {
    "h1": "HTTP/1.1 (wrk)",
    "h2c": "h2c (h2load)",
    "h2tls": "h2 TLS (h2load)",
}

#: Builds a server command from (plain port, TLS port, certificate, key).
Command = Callable[[int, int, str, str], list[str]]


@dataclass
class Process:
    """One server process and the loads it answers."""

    loads: tuple[str, ...]
    command: Command


@dataclass
class Server:
    """A server configuration: its processes and its results."""

    name: str
    processes: list[Process]
    hcore: bool = False
    results: dict[str, list[float]] = field(default_factory=dict)
    #: The server's CPU time (user + system) per request, in microseconds.
    cpu: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)

    @property
    def loads(self) -> tuple[str, ...]:
        return tuple(load for p in self.processes for load in p.loads)


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


def _http1_implementations() -> list[str]:
    code = (
        "from hcore.protocols import default_registry as r; "
        "print(' '.join(r.names('1.1')))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT
    ).stdout
    return output.split()


def _hcore(networking: str, http1_impl: str, loop: str) -> Command:
    """``hcore server`` with a networking backend, HTTP/1.1 implementation and loop."""

    def command(port: int, tls_port: int, cert: str, key: str) -> list[str]:
        endpoints = [f"http://127.0.0.1:{port}", f"https://127.0.0.1:{tls_port}"]
        options = [f"--networking={networking}", f"--loop={loop}"]
        options += ["--cert", cert, "--key", key]
        options += [f"--http1-implementation={http1_impl}"]
        options += ["--no-access-log", "--log-level=warning"]
        return [str(BIN / "hcore"), "server", APP, *endpoints, *options]

    return command


def _uvicorn(http: str, loop: str) -> Command:
    def command(port: int, tls_port: int, cert: str, key: str) -> list[str]:
        return [
            str(BIN / "uvicorn"),
            APP,
            "--host=127.0.0.1",
            f"--port={port}",
            f"--http={http}",
            f"--loop={loop}",
            "--lifespan=on",
            "--no-access-log",
            "--log-level=warning",
        ]

    return command


def _hypercorn(config: Path) -> Command:
    def command(port: int, tls_port: int, cert: str, key: str) -> list[str]:
        return [
            str(BIN / "hypercorn"),
            f"--config={config}",
            f"--insecure-bind=127.0.0.1:{port}",
            f"--bind=127.0.0.1:{tls_port}",
            f"--certfile={cert}",
            f"--keyfile={key}",
            "--log-level=warning",
            APP,
        ]

    return command


def _hface(*flags: str) -> Command:
    def command(port: int, tls_port: int, cert: str, key: str) -> list[str]:
        endpoints = [f"http://127.0.0.1:{port}"]
        if "--tcp" in flags:
            endpoints.append(f"https://127.0.0.1:{tls_port}")
        return [
            str(BIN / "hface"),
            "server",
            *flags,
            f"--cert={cert}",
            f"--key={key}",
            "--log-level=WARNING",
            APP,
            *endpoints,
        ]

    return command


def servers(args: argparse.Namespace, workdir: Path) -> list[Server]:
    """The configurations to measure, as selected by ``--servers``."""
    hypercorn_config = workdir / "hypercorn.toml"
    # Lift hypercorn's 1,000-requests-per-connection cap (HTTP/1.1 and HTTP/2).
    hypercorn_config.write_text("keep_alive_max_requests = 1000000000\n")
    impls = _http1_implementations()
    all_loads = ("h1", "h2c", "h2tls")
    candidates = [
        Server(
            "hcore",
            [Process(all_loads, _hcore("system", "h11", "asyncio"))],
            hcore=True,
        ),
        Server(
            "hcore+epoll",
            [Process(all_loads, _hcore("epoll", "h11", "asyncio"))],
            hcore=True,
        ),
    ]
    if "httptools" in impls:
        candidates += [
            Server(
                "hcore+epoll+httptools",
                [Process(all_loads, _hcore("epoll", "httptools", "asyncio"))],
                hcore=True,
            ),
            Server(
                "hcore+epoll+httptools+uvloop",
                [Process(("h1",), _hcore("epoll", "httptools", "uvloop"))],
                hcore=True,
            ),
        ]
    else:
        print(
            "server_bench: no HTTP/1.1 implementation 'httptools' registered "
            f"(registered: {', '.join(impls)}); hcore+httptools left out",
            file=sys.stderr,
        )
    candidates += [
        Server("uvicorn+h11", [Process(("h1",), _uvicorn("h11", "asyncio"))]),
        Server(
            "uvicorn+httptools", [Process(("h1",), _uvicorn("httptools", "asyncio"))]
        ),
        Server(
            "uvicorn+httptools+uvloop",
            [Process(("h1",), _uvicorn("httptools", "uvloop"))],
        ),
        Server("hypercorn", [Process(all_loads, _hypercorn(hypercorn_config))]),
        # hface serves h2c only when told to speak HTTP/2 alone.
        Server(
            "hface",
            [
                Process(("h1", "h2tls"), _hface("--tcp")),
                Process(("h2c",), _hface("--http2")),
            ],
        ),
    ]
    wanted = args.servers.split(",") if args.servers else None
    chosen = [s for s in candidates if wanted is None or s.name in wanted]
    loads = set(args.loads.split(","))
    for server in chosen:
        server.processes = [
            Process(tuple(x for x in p.loads if x in loads), p.command)
            for p in server.processes
            if loads.intersection(p.loads)
        ]
    return [s for s in chosen if s.processes]


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(
    port: int, process: subprocess.Popen[bytes], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    # Bounded by the deadline.
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server not listening on port {port} after {timeout} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _pinned(cpu: int | None, command: list[str]) -> list[str]:
    if cpu is None:
        return command
    return ["taskset", "-c", str(cpu), *command]


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its descendants so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (
                int(fields[1]),
                (int(fields[11]) + int(fields[12])) / ticks,
            )
    total, todo = 0.0, [pid]
    # Bounded by the number of processes.
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo.extend(child for child, (parent, _) in stats.items() if parent == current)
    return total


#: (requests/s, problems found, requests done)
Figures = tuple[float, str, int]


def _wrk(args: argparse.Namespace, url: str, duration: float) -> Figures:
    command = [
        "wrk",
        "-t1",
        f"-c{args.wrk_connections}",
        f"-d{max(1, round(duration))}s",
        url,
    ]
    output = subprocess.run(
        _pinned(args.load_cpu, command),
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    done = re.search(r"(\d+) requests in", output)
    if rate is None or done is None:
        raise RuntimeError(f"wrk output not understood:\n{output}")
    problems = []
    errors = re.search(r"Socket errors: (.*)", output)
    if errors:
        problems.append("socket errors: " + errors.group(1).strip())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        problems.append(f"{non2xx.group(1)} non-2xx")
    return float(rate.group(1)), "; ".join(problems), int(done.group(1))


def _h2load(args: argparse.Namespace, url: str, requests: int) -> Figures:
    command = [
        "h2load",
        "-t1",
        f"-c{args.h2_clients}",
        f"-m{args.h2_streams}",
        f"-n{requests}",
        url,
    ]
    output = subprocess.run(
        _pinned(args.load_cpu, command),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    ).stdout
    counts = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
        r"(\d+) failed, (\d+) errored, (\d+) timeout",
        output,
    )
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", output)
    if counts is None or rate is None:
        raise RuntimeError(f"h2load output not understood:\n{output}")
    total, _, succeeded, failed, errored, timeout = map(int, counts.groups())
    problems = ""
    if succeeded != total:
        problems = (
            f"{total - succeeded} of {total} not succeeded "
            f"({failed} failed, {errored} errored, {timeout} timeout)"
        )
    return float(rate.group(1)), problems, succeeded


def _measure(
    args: argparse.Namespace, load: str, port: int, tls_port: int, pid: int
) -> tuple[float, str, float]:
    """(requests/s, problems, server CPU microseconds per request)."""
    if load == "h1":
        url = f"http://127.0.0.1:{port}/"
        if args.warmup:
            _wrk(args, url, args.warmup)
        cpu = _cpu_seconds(pid)
        rate, problems, done = _wrk(args, url, args.duration)
        return rate, problems, (_cpu_seconds(pid) - cpu) / max(done, 1) * 1e6
    url = (
        f"http://127.0.0.1:{port}/"
        if load == "h2c"
        else f"https://127.0.0.1:{tls_port}/"
    )
    # The warm-up sets the request count so that the run takes ~duration.
    warm_count = args.h2_clients * args.h2_streams * 10
    warm_rate, problems, _ = _h2load(args, url, warm_count)
    if problems:
        return warm_rate, "warm-up: " + problems, float("nan")
    count = max(warm_count, round(warm_rate * args.duration, -3))
    cpu = _cpu_seconds(pid)
    rate, problems, done = _h2load(args, url, int(count))
    return rate, problems, (_cpu_seconds(pid) - cpu) / max(done, 1) * 1e6


def _run_once(
    args: argparse.Namespace, server: Server, run: int, cert: str, key: str
) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for process_spec in server.processes:
        port, tls_port = _free_port(), _free_port()
        command = _pinned(
            args.server_cpu, process_spec.command(port, tls_port, cert, key)
        )
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            try:
                _wait_listening(port, process, 30)
                if "h2tls" in process_spec.loads:
                    _wait_listening(tls_port, process, 30)
            except RuntimeError as exc:
                process.kill()
                _, stderr = process.communicate()
                raise RuntimeError(
                    f"{server.name}: {exc}\n{' '.join(command)}\n"
                    + stderr.decode(errors="replace")[-3000:]
                ) from None
            for load in process_spec.loads:
                rate, problems, cpu = _measure(args, load, port, tls_port, process.pid)
                server.results.setdefault(load, []).append(rate)
                server.cpu.setdefault(load, []).append(cpu)
                if problems:
                    server.failures.setdefault(load, []).append(
                        f"run {run}: {problems}"
                    )
                note = f"   FAILURES: {problems}" if problems else ""
                print(
                    f"run {run} {server.name:<30} {load:<6} {rate:>10,.0f} req/s"
                    f" {cpu:8.0f} us CPU/req{note}",
                    flush=True,
                )
        finally:
            _stop(process)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def _cell(values: list[float] | None) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def _figure_table(
    results: Sequence[Server],
    loads: Sequence[str],
    figures: Callable[[Server], dict[str, list[float]]],
    unit: str,
) -> list[str]:
    lines = [
        "| server | " + " | ".join(f"{LOAD_TITLES[x]} {unit}" for x in loads) + " |",
        "| --- |" + " ---: |" * len(loads),
    ]
    for server in results:
        cells = []
        for load in loads:
            cell = _cell(figures(server).get(load))
            if server.failures.get(load):
                cell += " (failures!)"
            cells.append(cell)
        lines.append(f"| {server.name} | " + " | ".join(cells) + " |")
    return lines


def _ratio_table(
    results: Sequence[Server],
    loads: Sequence[str],
    figures: Callable[[Server], dict[str, list[float]]],
    inverse: bool,
) -> tuple[list[str], dict[str, dict[str, float]]]:
    ratios: dict[str, dict[str, float]] = {}
    lines = [
        "| ratio | " + " | ".join(LOAD_TITLES[x] for x in loads) + " |",
        "| --- |" + " ---: |" * len(loads),
    ]
    for ours in (s for s in results if s.hcore):
        for peer in (s for s in results if not s.hcore):
            row: dict[str, float] = {}
            cells = []
            for load in loads:
                a, b = figures(ours).get(load), figures(peer).get(load)
                if a and b:
                    ratio = statistics.median(a) / statistics.median(b)
                    row[load] = 1 / ratio if inverse else ratio
                    cells.append(f"{row[load]:.2f}")
                else:
                    cells.append("—")
            if row:
                ratios[f"{ours.name} / {peer.name}"] = row
                lines.append(
                    f"| {ours.name} / {peer.name} | " + " | ".join(cells) + " |"
                )
    return lines, ratios


def report(results: Sequence[Server], loads: Sequence[str]) -> dict[str, object]:
    """Print the tables (Markdown) and return the JSON document's results."""
    print("\nRequests/s: median of the runs (min-max)\n")
    print("\n".join(_figure_table(results, loads, lambda s: s.results, "req/s")))
    lines, ratios = _ratio_table(results, loads, lambda s: s.results, False)
    print("\nRatios of requests/s medians (above 1: hcore is faster)\n")
    print("\n".join(lines))
    print("\nServer CPU time per request, microseconds: median (min-max)\n")
    print("\n".join(_figure_table(results, loads, lambda s: s.cpu, "us/req")))
    lines, cpu_ratios = _ratio_table(results, loads, lambda s: s.cpu, True)
    print(
        "\nRatios of CPU per request, peer / hcore (above 1: hcore does less "
        "work per request)\n"
    )
    print("\n".join(lines))
    failures = [
        f"{s.name} {load}: {problem}"
        for s in results
        for load, problems in s.failures.items()
        for problem in problems
    ]
    print("\nFailures: " + ("none" if not failures else ""))
    for failure in failures:
        print("  " + failure)
    return {
        "servers": {
            s.name: {
                load: {
                    "runs": values,
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                    "cpu_us_per_request": s.cpu.get(load, []),
                    "failures": s.failures.get(load, []),
                }
                for load, values in s.results.items()
            }
            for s in results
        },
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
    }


def machine() -> dict[str, object]:
    """What the figures were measured on."""
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


def _certificate(workdir: Path) -> tuple[str, str]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    with cert_path.open("wb") as file:
        for blob in cert.cert_chain_pems:
            file.write(blob.bytes())
    return str(cert_path), str(key_path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load")
    parser.add_argument("--warmup", type=float, default=1.0, help="wrk warm-up seconds")
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument("--h2-clients", type=int, default=8, help="h2load -c")
    parser.add_argument("--h2-streams", type=int, default=16, help="h2load -m")
    parser.add_argument("--loads", default=",".join(LOADS), help="of h1, h2c, h2tls")
    parser.add_argument("--servers", help="comma-separated names (all by default)")
    parser.add_argument("--server-cpu", type=int, default=0, help="taskset CPU")
    parser.add_argument("--load-cpu", type=int, default=1, help="taskset CPU")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench" / "results" / "server_bench.json",
        help="where to write the results (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    for tool in ("wrk", "h2load", "taskset"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is missing: run bench/setup")
    if args.no_pin:
        args.server_cpu = args.load_cpu = None
    loads = [x for x in LOADS if x in args.loads.split(",")]
    with tempfile.TemporaryDirectory(prefix="hcore-bench-") as tmp:
        workdir = Path(tmp)
        cert, key = _certificate(workdir)
        chosen = servers(args, workdir)
        print("servers: " + ", ".join(s.name for s in chosen), flush=True)
        for run in range(1, args.runs + 1):
            for server in chosen:
                _run_once(args, server, run, cert, key)
    document: dict[str, object] = {"machine": machine(), "options": vars(args)}
    document.update(report(chosen, loads))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2, default=str))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
