"""``--workers N``: N server processes sharing their ports, kept running.

The parent process picks a concrete port for every endpoint that asked for
port 0 (all workers must bind the same ones), then starts N copies of the
command with ``--workers 1 --reuse-port``: each binds with ``SO_REUSEPORT``
and the kernel spreads connections between them.  A worker that dies is
started again (a crash loop -- ten restarts within ten seconds -- stops
the whole server with status 1).  SIGINT and SIGTERM are passed on to the
workers once, as SIGTERM, and the parent waits for their graceful shutdown.
A worker is told its parent's pid (``--supervisor-pid``) and shuts down
gracefully once it is orphaned, for a parent killed outright cannot pass a
signal on.  Workers run in their own session, so that a terminal's Ctrl-C reaches the
parent only and each worker gets exactly one signal.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import FrameType

from hcore_io.server import Endpoint

__all__ = ("resolve_ports", "supervise")

logger = logging.getLogger("hcore.server")

# A worker is restarted at once; this many restarts within the window is a
# crash loop, which stops the server.
_MAX_RESTARTS = 10
_RESTART_WINDOW = 10.0
_POLL_INTERVAL = 0.1
_PORT_ATTEMPTS = 50


def _free_port(endpoint: Endpoint) -> int:
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if endpoint.tls else [])
    # Bounded: a few tries at a port free on TCP (and UDP for https).
    for _ in range(_PORT_ATTEMPTS):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((endpoint.host, 0))
            port: int = probe.getsockname()[1]
        try:
            for kind in kinds:
                with socket.socket(family, kind) as check:
                    check.bind((endpoint.host, port))
        except OSError:
            continue
        return port
    raise SystemExit(f"hcore: found no free port for {endpoint}")


def resolve_ports(endpoints: Sequence[Endpoint]) -> list[Endpoint]:
    """Give each endpoint asking for port 0 a free port, for all workers to share."""
    return [
        e if e.port else Endpoint(e.scheme, e.host, _free_port(e)) for e in endpoints
    ]


def supervise(command: Sequence[str], workers: int, shutdown_timeout: float) -> int:
    """Run ``workers`` copies of ``command`` until SIGINT or SIGTERM.

    :param command: the worker's command line.
    :param workers: how many processes.
    :param shutdown_timeout: how long the workers' graceful shutdown may take.
    :return: the exit status: 0 after a signal, 1 after a crash loop.
    """
    stop = [False]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop[0] = True

    handlers: dict[
        signal.Signals, Callable[[int, FrameType | None], object] | int | None
    ]
    handlers = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handlers[signum] = signal.signal(signum, on_signal)
    processes: list[subprocess.Popen[bytes]] = []
    restarts: deque[float] = deque()
    status = 0

    def start(index: int) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(list(command), start_new_session=True)
        print(
            f"hcore: worker {index} started (pid {process.pid})",
            file=sys.stderr,
            flush=True,
        )
        return process

    try:
        processes.extend(start(index) for index in range(workers))
        # Bounded by the signal that stops the server (or a crash loop).
        while not stop[0]:
            time.sleep(_POLL_INTERVAL)
            for index, process in enumerate(processes):
                code = process.poll()
                if code is None or stop[0]:
                    continue
                now = time.monotonic()
                restarts.append(now)
                while restarts and restarts[0] < now - _RESTART_WINDOW:
                    restarts.popleft()
                if len(restarts) > _MAX_RESTARTS:
                    logger.error("workers keep dying: stopping the server")
                    stop[0] = True
                    status = 1
                    break
                logger.warning(
                    "worker %d (pid %d) exited with status %s: restarting",
                    index,
                    process.pid,
                    code,
                )
                processes[index] = start(index)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + shutdown_timeout + 5
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return status
