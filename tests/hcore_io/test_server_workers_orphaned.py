"""Workers of ``hcore server --workers`` stop once their supervisor is gone.

A supervisor killed outright (SIGKILL, the OOM killer) cannot pass a signal
on; its workers, each in a session of its own, would otherwise serve on
for ever.  They notice that they have been orphaned and shut down
gracefully, as on SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER_STARTED = re.compile(r"worker \d started \(pid (\d+)\)")


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name, which is in parentheses.
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_workers_stop_when_their_supervisor_is_killed(
    networking_backend: str, loop: str
) -> None:
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hcore_io.cli import main; raise SystemExit(main())",
            "server",
            "tests.hcore_io.server_apps:app",
            "http://127.0.0.1:0",
            "--workers",
            "2",
            "--networking",
            networking_backend,
            "--loop",
            loop,
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    workers: list[int] = []
    try:
        assert supervisor.stderr is not None
        serving = 0
        # Bounded: both workers start and report, or the test times out.
        while len(workers) < 2 or serving < 2:
            line = supervisor.stderr.readline()
            assert line, "the server exited before it was ready"
            workers += [int(pid) for pid in WORKER_STARTED.findall(line)]
            # The CLI's own line, once per worker (not the log line too).
            serving += line.startswith("hcore: serving on http://127.0.0.1:")
        supervisor.kill()
        supervisor.wait(timeout=10)
        deadline = time.monotonic() + 30
        # Bounded by the deadline.
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)]
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=10)
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if supervisor.stderr is not None:
            supervisor.stderr.close()
