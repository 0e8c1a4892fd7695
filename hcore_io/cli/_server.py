"""``hcore server APP ENDPOINT...``: serve an ASGI application.

SIGINT and SIGTERM start a graceful shutdown (stop accepting, GOAWAY, let
requests in flight finish within ``--shutdown-timeout``); a second signal
cancels what is still running.  ``--workers N`` runs N such processes on
the same ports (see :mod:`hcore_io.cli._workers`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, TypeVar, cast

import anyio

from hcore import ServerTLSConfig
from hcore_io.cli._common import add_loop_argument, configure_logging, run_async
from hcore_io.cli._workers import resolve_ports, supervise
from hcore_io.server import (
    ASGIApp,
    ASGIServer,
    Endpoint,
    HTTPServer,
    ReusePortNetworking,
    parse_endpoint,
)

if TYPE_CHECKING:
    from hcore_io.cli import Subparsers

__all__ = ("load_app", "parse_endpoints", "register", "run", "serve_until_signalled")

_Context = TypeVar("_Context")

logger = logging.getLogger("hcore.server")


def register(subparsers: Subparsers) -> None:
    """Add the ``server`` subcommand."""
    parser = subparsers.add_parser(
        "server",
        help="serve an ASGI application over HTTP/1.1, HTTP/2 and HTTP/3",
        description=(
            "Serve an ASGI 3 application.  http:// endpoints speak HTTP/1.1 and "
            "HTTP/2 with prior knowledge; https:// endpoints speak HTTP/1.1 and "
            "HTTP/2 over TLS and HTTP/3 over QUIC on the same port number."
        ),
    )
    parser.add_argument(
        "app", metavar="APP", help="the application, as module:attribute"
    )
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
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N processes sharing the ports (SO_REUSEPORT), restarted if one dies",
    )
    # Set for the processes --workers starts.
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    add_loop_argument(parser)
    parser.add_argument(
        "--networking",
        default="system",
        help="networking backend; only 'system' (AnyIO sockets) is available",
    )
    limits = parser.add_argument_group("limits and timeouts")
    limits.add_argument("--max-connections", type=int, default=1000)
    limits.add_argument("--max-concurrent-streams", type=int, default=100)
    limits.add_argument("--max-header-size", type=int, default=64 * 1024)
    limits.add_argument("--max-body-size", type=int, default=100 * 1024 * 1024)
    limits.add_argument("--keep-alive-timeout", type=float, default=5.0)
    limits.add_argument("--request-header-timeout", type=float, default=10.0)
    limits.add_argument("--shutdown-timeout", type=float, default=30.0)
    parser.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--root-path", default="", help="the ASGI root_path")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
    )
    parser.add_argument(
        "--no-access-log", action="store_true", help="do not log each request"
    )
    parser.set_defaults(run=run)


def load_app(spec: str) -> ASGIApp:
    """Import ``module:attribute`` (the current directory comes first on the path).

    :raises SystemExit: with a message, if it cannot be imported.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"hcore: APP must be module:attribute, not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"hcore: cannot import {module_name!r}: {exc}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SystemExit(f"hcore: {module_name!r} has no {attribute!r}") from None
    if not callable(target):
        raise SystemExit(f"hcore: {spec!r} is not callable")
    return cast(ASGIApp, target)


def parse_endpoints(texts: list[str]) -> list[Endpoint]:
    """Parse the ENDPOINT arguments; exit with a message on a bad one."""
    endpoints = []
    for text in texts:
        try:
            endpoints.append(parse_endpoint(text))
        except ValueError as exc:
            raise SystemExit(f"hcore: {exc}") from None
    return endpoints


def run(args: argparse.Namespace) -> int:
    """Run ``hcore server``."""
    if args.networking != "system":
        raise SystemExit(
            f"hcore: unknown --networking {args.networking!r}; "
            "only 'system' is available in this version"
        )
    endpoints = parse_endpoints(args.endpoints)
    if args.workers < 1:
        raise SystemExit("hcore: --workers must be at least 1")
    tls_config = None
    if any(endpoint.tls for endpoint in endpoints):
        if not args.cert:
            raise SystemExit("hcore: https endpoints need --cert (and --key)")
        tls_config = ServerTLSConfig(certfile=args.cert, keyfile=args.key)
    chosen = args.http1 or args.http2 or args.http3
    configure_logging(args.log_level)
    if args.no_access_log:
        logging.getLogger("hcore.access").setLevel(logging.WARNING)
    app = load_app(args.app)
    if args.workers > 1:
        shared = resolve_ports(endpoints)
        return supervise(
            _worker_command(args, shared), args.workers, args.shutdown_timeout
        )
    try:
        server = ASGIServer(
            app,
            tls_config=tls_config,
            http1=args.http1 or not chosen,
            http2=args.http2 or not chosen,
            http3=args.http3 or not chosen,
            max_connections=args.max_connections,
            max_concurrent_streams=args.max_concurrent_streams,
            max_header_size=args.max_header_size,
            max_body_size=args.max_body_size,
            keep_alive_timeout=args.keep_alive_timeout,
            request_header_timeout=args.request_header_timeout,
            shutdown_timeout=args.shutdown_timeout,
            lifespan=args.lifespan,
            root_path=args.root_path,
            networking=ReusePortNetworking() if args.reuse_port else None,
        )
    except ValueError as exc:
        raise SystemExit(f"hcore: {exc}") from None

    async def serve() -> int:
        return await serve_until_signalled(server, endpoints)

    return run_async(args.loop, serve)


def _worker_command(args: argparse.Namespace, endpoints: list[Endpoint]) -> list[str]:
    """The command line of one worker: these options, one process, shared ports."""
    command = [
        sys.executable,
        "-c",
        "from hcore_io.cli import main; raise SystemExit(main())",
        "server",
        args.app,
        *(str(endpoint) for endpoint in endpoints),
        "--workers=1",
        "--reuse-port",
        f"--loop={args.loop}",
        f"--networking={args.networking}",
        f"--max-connections={args.max_connections}",
        f"--max-concurrent-streams={args.max_concurrent_streams}",
        f"--max-header-size={args.max_header_size}",
        f"--max-body-size={args.max_body_size}",
        f"--keep-alive-timeout={args.keep_alive_timeout}",
        f"--request-header-timeout={args.request_header_timeout}",
        f"--shutdown-timeout={args.shutdown_timeout}",
        f"--lifespan={args.lifespan}",
        f"--root-path={args.root_path}",
        f"--log-level={args.log_level}",
    ]
    for flag in ("http1", "http2", "http3", "no_access_log"):
        if getattr(args, flag):
            command.append("--" + flag.replace("_", "-"))
    for flag in ("cert", "key"):
        if getattr(args, flag):
            command.append(f"--{flag}={getattr(args, flag)}")
    return command


async def serve_until_signalled(
    server: HTTPServer[_Context], endpoints: list[Endpoint]
) -> int:
    """Serve until SIGINT or SIGTERM, then shut down gracefully.

    :return: the exit status.
    """
    async with anyio.create_task_group() as group:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            bound = await group.start(server.serve, endpoints)
            for endpoint in bound:
                print(f"hcore: serving on {endpoint}", file=sys.stderr, flush=True)
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


async def _shutdown(server: HTTPServer[_Context], group: anyio.abc.TaskGroup) -> None:
    await server.shutdown()
    group.cancel_scope.cancel()
