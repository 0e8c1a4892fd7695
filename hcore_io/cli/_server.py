"""``hcore server APP ENDPOINT...``: serve an ASGI application.

SIGINT and SIGTERM start a graceful shutdown (stop accepting, GOAWAY, let
requests in flight finish within ``--shutdown-timeout``); a second signal
cancels what is still running.  ``--workers N`` runs N such processes on
the same ports (see :mod:`hcore_io.cli._workers`).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from typing import TYPE_CHECKING, cast

from hcore.protocols import default_registry
from hcore_io._limits import Limits
from hcore_io.cli._common import run_async
from hcore_io.cli._serving import (
    add_serving_arguments,
    serve_until_signalled,
    serving_flags,
    serving_options,
)
from hcore_io.cli._workers import resolve_ports, supervise
from hcore_io.server import ASGIApp, ASGIServer, Endpoint

if TYPE_CHECKING:
    from hcore_io.cli import Subparsers

__all__ = ("LIMIT_OPTIONS", "limits_of", "load_app", "register", "run")

#: The limit options, each the :class:`~hcore_io.Limits` field of its name
#: (``--max-body-size`` sets ``max_body_size``), with its default.
LIMIT_OPTIONS = (
    "max_connections",
    "max_concurrent_streams",
    "max_header_size",
    "max_header_count",
    "max_body_size",
    "max_pipelined_size",
    "max_buffered_data",
    "keep_alive_timeout",
    "request_header_timeout",
    "body_timeout",
    "shutdown_timeout",
    "websocket_max_message_size",
)


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
    add_serving_arguments(parser, "request")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N processes sharing the ports (SO_REUSEPORT), restarted if one dies",
    )
    # Set for the processes --workers starts.
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    # A worker of --workers: its supervisor's pid (it stops once orphaned).
    parser.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    limits = parser.add_argument_group(
        "limits and timeouts",
        "the fields of hcore_io.Limits (sizes in bytes, times in seconds)",
    )
    defaults = Limits()
    for name in LIMIT_OPTIONS:
        default = getattr(defaults, name)
        limits.add_argument(
            "--" + name.replace("_", "-"),
            type=type(default),
            default=default,
            metavar="N" if isinstance(default, int) else "SECONDS",
            help=f"(default: {default})",
        )
    parser.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--root-path", default="", help="the ASGI root_path")
    parser.add_argument(
        "--http1-implementation",
        choices=default_registry.names("1.1"),
        metavar="NAME",
        help="the registered HTTP/1.1 implementation to serve with: "
        f"{', '.join(default_registry.names('1.1'))} (default: "
        f"{default_registry.get('1.1').name})",
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


def limits_of(args: argparse.Namespace) -> Limits:
    """The :class:`~hcore_io.Limits` the limit options give.

    :raises ValueError: if one is not positive.
    """
    return Limits(**{name: getattr(args, name) for name in LIMIT_OPTIONS})


def run(args: argparse.Namespace) -> int:
    """Run ``hcore server``."""
    if args.workers < 1:
        raise SystemExit("hcore: --workers must be at least 1")
    options = serving_options(args, reuse_port=args.reuse_port)
    app = load_app(args.app)
    if args.workers > 1:
        shared = resolve_ports(options.endpoints)
        return supervise(
            _worker_command(args, shared), args.workers, args.shutdown_timeout
        )
    try:
        server = ASGIServer(
            app,
            tls_config=options.tls_config,
            networking=options.networking,
            http1=options.http1,
            http1_implementation=args.http1_implementation,
            http2=options.http2,
            http3=options.http3,
            limits=limits_of(args),
            lifespan=args.lifespan,
            root_path=args.root_path,
        )
    except ValueError as exc:
        raise SystemExit(f"hcore: {exc}") from None

    async def serve() -> int:
        return await serve_until_signalled(
            server, options.endpoints, supervisor_pid=args.supervisor_pid
        )

    # Everything made so far (modules, the application) lives as long as the
    # process: out of the collector's sight, it is not traversed again by
    # every full collection under load (measured: about 6% of the server's
    # CPU at 7k requests/s).
    gc.freeze()
    return run_async(args.loop, serve)


def _worker_command(args: argparse.Namespace, endpoints: list[Endpoint]) -> list[str]:
    """The command line of one worker: these options, one process, shared ports."""
    return [
        sys.executable,
        "-c",
        "from hcore_io.cli import main; raise SystemExit(main())",
        "server",
        args.app,
        *(str(endpoint) for endpoint in endpoints),
        "--workers=1",
        "--reuse-port",
        f"--supervisor-pid={os.getpid()}",
        *serving_flags(args),
        *(
            f"--{name.replace('_', '-')}={getattr(args, name)}"
            for name in LIMIT_OPTIONS
        ),
        f"--lifespan={args.lifespan}",
        f"--root-path={args.root_path}",
        *(
            [f"--http1-implementation={args.http1_implementation}"]
            if args.http1_implementation
            else []
        ),
    ]
