"""What ``hcore server`` and ``hcore proxy`` share: where and how they listen.

Both take the same endpoints, certificate, HTTP version, event loop,
networking and logging options (:func:`add_serving_arguments`), turn them
into server arguments the same way (:func:`serving_options`), and run until
a signal (:func:`serve_until_signalled`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup

from hcore import ServerTLSConfig
from hcore_io.cli._common import (
    add_loop_argument,
    add_networking_argument,
    configure_logging,
    make_networking,
)
from hcore_io.networking import EpollNetworking, SystemNetworking
from hcore_io.server import Endpoint, HTTPServer, parse_endpoint

__all__ = (
    "ServingOptions",
    "add_serving_arguments",
    "parse_endpoints",
    "serve_until_signalled",
    "serving_flags",
    "serving_options",
)

_Context = TypeVar("_Context")

logger = logging.getLogger("hcore.server")

# How often a worker of --workers checks that its supervisor is alive.
_SUPERVISOR_POLL = 0.5


def add_serving_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """Add the endpoints, ``--cert``/``--key``, ``--http1/2/3``, ``--loop``,
    ``--networking``, ``--log-level`` and ``--no-access-log``.

    :param parser: the subcommand's parser.
    :param what: what the access log records, for ``--no-access-log``'s help.
    """
    parser.add_argument(
        "endpoints",
        metavar="ENDPOINT",
        nargs="+",
        help="where to listen: http://HOST:PORT or https://HOST:PORT",
    )
    parser.add_argument("--cert", help="certificate chain (PEM) for https endpoints")
    parser.add_argument("--key", help="private key (PEM) of --cert, if not in it")
    versions = parser.add_argument_group(
        "HTTP versions", "serve only the versions given (all three by default)"
    )
    versions.add_argument("--http1", action="store_true", help="serve HTTP/1.1")
    versions.add_argument("--http2", action="store_true", help="serve HTTP/2")
    versions.add_argument("--http3", action="store_true", help="serve HTTP/3")
    add_loop_argument(parser)
    add_networking_argument(parser)
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
    )
    parser.add_argument(
        "--no-access-log", action="store_true", help=f"do not log each {what}"
    )


def parse_endpoints(texts: Sequence[str]) -> list[Endpoint]:
    """Parse the ENDPOINT arguments.

    :raises SystemExit: with a message, on a malformed endpoint.
    """
    endpoints = []
    for text in texts:
        try:
            endpoints.append(parse_endpoint(text))
        except ValueError as exc:
            raise SystemExit(f"hcore: {exc}") from None
    return endpoints


@dataclass(frozen=True)
class ServingOptions:
    """The server arguments the shared options give."""

    #: Where to listen.
    endpoints: list[Endpoint]
    #: The certificate, if an endpoint is ``https``.
    tls_config: ServerTLSConfig | None
    #: The backend chosen with ``--networking``.
    networking: SystemNetworking | EpollNetworking
    #: The HTTP versions to serve.
    http1: bool
    http2: bool
    http3: bool


def serving_options(
    args: argparse.Namespace, *, reuse_port: bool = False
) -> ServingOptions:
    """Check the shared options and set up logging.

    :param args: the parsed command line.
    :param reuse_port: bind with ``SO_REUSEPORT`` (a worker of ``--workers``).
    :raises SystemExit: with a message, on a bad endpoint, ``https``
        without ``--cert``, or a networking backend this system lacks.
    """
    endpoints = parse_endpoints(args.endpoints)
    tls_config = None
    if any(endpoint.tls for endpoint in endpoints):
        if not args.cert:
            raise SystemExit("hcore: https endpoints need --cert (and --key)")
        tls_config = ServerTLSConfig(certfile=args.cert, keyfile=args.key)
    networking = make_networking(args.networking, reuse_port=reuse_port)
    configure_logging(args.log_level)
    if args.no_access_log:
        logging.getLogger("hcore.access").setLevel(logging.WARNING)
    chosen = args.http1 or args.http2 or args.http3
    return ServingOptions(
        endpoints=endpoints,
        tls_config=tls_config,
        networking=networking,
        http1=args.http1 or not chosen,
        http2=args.http2 or not chosen,
        http3=args.http3 or not chosen,
    )


def serving_flags(args: argparse.Namespace) -> list[str]:
    """The shared options as command-line flags (for the ``--workers`` processes)."""
    flags = [
        f"--loop={args.loop}",
        f"--networking={args.networking}",
        f"--log-level={args.log_level}",
    ]
    for flag in ("http1", "http2", "http3", "no_access_log"):
        if getattr(args, flag):
            flags.append("--" + flag.replace("_", "-"))
    for flag in ("cert", "key"):
        if getattr(args, flag):
            flags.append(f"--{flag}={getattr(args, flag)}")
    return flags


async def serve_until_signalled(
    server: HTTPServer[_Context],
    endpoints: Sequence[Endpoint],
    *,
    supervisor_pid: int | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM, then shut down gracefully.

    A second signal cancels what the graceful shutdown has left running.

    :param supervisor_pid: for a worker of ``--workers``, its supervisor's
        process id: once the worker's parent is another process (the
        supervisor died without passing a signal on, killed by SIGKILL or
        the OOM killer), the worker shuts down gracefully as on a signal,
        rather than serve for ever on its own.
    :return: the exit status.
    """
    async with anyio.create_task_group() as group:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            bound = await group.start(server.serve, endpoints)
            for endpoint in bound:
                print(f"hcore: serving on {endpoint}", file=sys.stderr, flush=True)
            if supervisor_pid is not None:
                group.start_soon(_watch_supervisor, supervisor_pid, server, group)
            # Bounded: the first signal starts the shutdown, the second ends it.
            async for signum in signals:
                name = signal.Signals(signum).name
                logger.info("%s received: shutting down gracefully", name)
                group.start_soon(_shutdown, server, group)
                break
            async for signum in signals:
                logger.warning(
                    "%s received again: stopping now", signal.Signals(signum).name
                )
                group.cancel_scope.cancel()
                break
    return 0


async def _shutdown(server: HTTPServer[_Context], group: TaskGroup) -> None:
    await server.shutdown()
    group.cancel_scope.cancel()


async def _watch_supervisor(
    supervisor_pid: int, server: HTTPServer[_Context], group: TaskGroup
) -> None:
    # Ends when the server does (cancelled with the group), or once the
    # supervisor is gone: an orphan is adopted by another process.  Polled:
    # nothing tells a process that its parent died (short of Linux's
    # PR_SET_PDEATHSIG, which only signals).
    while True:
        await anyio.sleep(_SUPERVISOR_POLL)
        if os.getppid() != supervisor_pid:
            break
    logger.warning(
        "the supervisor (pid %d) is gone: shutting down gracefully", supervisor_pid
    )
    await _shutdown(server, group)
