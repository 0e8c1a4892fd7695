"""The long fuzz run: every target under atheris (libFuzzer), by hand.

Usage (from the repository root)::

    .venv/bin/python tests/fuzz/run.py                  # 60 s per target
    .venv/bin/python tests/fuzz/run.py --seconds 120 h2-server sse
    .venv/bin/python tests/fuzz/run.py --jobs 2          # two at a time
    .venv/bin/python tests/fuzz/run.py --list

Each target runs in its own process (libFuzzer exits when done), seeded with
valid traffic from :func:`tests.fuzz.targets.seeds` and instrumented for
coverage.  A failed invariant or an escaped exception stops that target and
leaves the input in ``--artifacts``; replay it with ``--replay FILE TARGET``.
At the end a table gives each target's executions and CPU seconds, and the
totals.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _targets() -> dict[str, Callable[[bytes], None]]:
    """Every target by name (HTTP/1.1 once per registered implementation)."""
    from tests.fuzz import targets
    from tests.hcore.conftest import HTTP1_IMPLEMENTATIONS

    found: dict[str, Callable[[bytes], None]] = {}
    for name, (client, server) in sorted(HTTP1_IMPLEMENTATIONS.items()):
        found[f"h1-server-{name}"] = partial(targets.run_h1_server, server())
        found[f"h1-client-{name}"] = partial(targets.run_h1_client, client())
    found["h2-server"] = targets.run_h2_server
    found["h2-client"] = targets.run_h2_client
    found["h3-server"] = lambda d: targets.run_h3(d, server=True)
    found["h3-client"] = lambda d: targets.run_h3(d, server=False)
    found["websocket"] = targets.run_websocket
    found["sse"] = targets.run_sse
    return found


def _seed_name(target: str) -> str:
    return re.sub(r"-(h11|httptools)$", "", target)


def _child(target: str, seconds: int, artifacts: Path) -> None:
    """Run one target under atheris; never returns."""
    import atheris  # type: ignore[import-untyped]

    # Coverage feedback comes from the code under test only; instrumenting
    # everything loaded (pytest, hypothesis) would only slow the run.
    with atheris.instrument_imports(
        include=["hcore", "h11", "h2", "hpack", "hyperframe", "aioquic", "wsproto"]
    ):
        import h2.connection
        import h11

        import hcore.protocols.http1
        import hcore.protocols.http2
        import hcore.protocols.http3
        import hcore.sse
        import hcore.websocket

    del h2, h11, hcore
    from tests.fuzz import targets

    run = _targets()[target]
    corpus = Path(tempfile.mkdtemp(prefix=f"hcore-fuzz-{target}-"))
    for index, seed in enumerate(targets.seed_inputs(_seed_name(target))):
        (corpus / f"seed-{index}").write_bytes(seed)
    args = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={seconds}",
        "-print_final_stats=1",
        "-max_len=4096",
        "-timeout=20",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={artifacts}/{target}-",
    ]
    atheris.Setup(args, run)
    atheris.Fuzz()


def _run_one(target: str, seconds: int, artifacts: Path) -> tuple[int, float, bool]:
    """Run a target in a child process; return (executions, CPU s, passed)."""
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                target,
                "--seconds",
                str(seconds),
                "--artifacts",
                str(artifacts),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        # wait4 gives this child's own CPU time, even with others running.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    cpu = usage.ru_utime + usage.ru_stime
    found = re.findall(r"stat::number_of_executed_units:\s*(\d+)", output)
    runs = int(found[-1]) if found else 0
    passed = child.returncode == 0
    if not passed:
        tail = "\n".join(output.splitlines()[-40:])
        print(f"--- {target} failed (exit {child.returncode}):\n{tail}", flush=True)
    return runs, cpu, passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="targets to run (default: all)")
    parser.add_argument("--seconds", type=int, default=60, help="time per target")
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path(tempfile.gettempdir()) / "hcore-fuzz-artifacts",
        help="where failing inputs are written",
    )
    parser.add_argument("--jobs", type=int, default=1, help="targets run at once")
    parser.add_argument("--list", action="store_true", help="list the targets")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--replay", nargs=2, metavar=("FILE", "TARGET"), help="run one input"
    )
    options = parser.parse_args()
    if options.child:
        _child(options.child, options.seconds, options.artifacts)
        return 0
    names = _targets()
    if options.list:
        print("\n".join(names))
        return 0
    if options.replay:
        path, target = options.replay
        names[target](Path(path).read_bytes())
        print("no failure")
        return 0
    chosen = options.targets or list(names)
    unknown = [name for name in chosen if name not in names]
    if unknown:
        parser.error(f"unknown targets: {', '.join(unknown)}")
    options.artifacts.mkdir(parents=True, exist_ok=True)
    total_runs, total_cpu, failures = 0, 0.0, []
    started = time.monotonic()
    print(f"{'target':24} {'executions':>12} {'CPU s':>8}  result", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        results = pool.map(
            lambda name: (name, *_run_one(name, options.seconds, options.artifacts)),
            chosen,
        )
        for name, runs, cpu, passed in results:
            total_runs += runs
            total_cpu += cpu
            if not passed:
                failures.append(name)
            verdict = "ok" if passed else "FAILED"
            print(f"{name:24} {runs:>12,} {cpu:>8.1f}  {verdict}", flush=True)
    wall = time.monotonic() - started
    print(
        f"{'total':24} {total_runs:>12,} {total_cpu:>8.1f}  "
        f"({total_cpu / 60:.1f} CPU-minutes, {wall / 60:.1f} minutes wall)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
