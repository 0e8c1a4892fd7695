"""``hcore proxy ENDPOINT...``: a CONNECT tunnelling proxy.

SIGINT and SIGTERM stop it gracefully, as for ``hcore server``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hcore_io.cli._common import run_async
from hcore_io.cli._serving import (
    add_serving_arguments,
    serve_until_signalled,
    serving_options,
)
from hcore_io.server import ProxyServer

if TYPE_CHECKING:
    from hcore_io.cli import Subparsers

__all__ = ("register", "run")


def register(subparsers: Subparsers) -> None:
    """Add the ``proxy`` subcommand."""
    parser = subparsers.add_parser(
        "proxy",
        help="tunnel CONNECT requests over HTTP/1.1, HTTP/2 and HTTP/3",
        description=(
            "A tunnelling proxy: each CONNECT host:port request gets a TCP "
            "connection to host:port, relayed both ways."
        ),
    )
    add_serving_arguments(parser, "tunnel")
    parser.add_argument(
        "--allow-port",
        type=int,
        action="append",
        dest="allowed_ports",
        metavar="PORT",
        help="a target port clients may connect to (repeatable; any if not given)",
    )
    parser.add_argument("--connect-timeout", type=float, default=10.0)
    parser.add_argument("--max-connections", type=int, default=1000)
    parser.add_argument("--shutdown-timeout", type=float, default=30.0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``hcore proxy``."""
    options = serving_options(args)
    try:
        proxy = ProxyServer(
            tls_config=options.tls_config,
            networking=options.networking,
            # The targets are reached with the same backend.
            client_networking=options.networking,
            http1=options.http1,
            http2=options.http2,
            http3=options.http3,
            max_connections=args.max_connections,
            shutdown_timeout=args.shutdown_timeout,
            connect_timeout=args.connect_timeout,
            allowed_ports=args.allowed_ports,
        )
    except ValueError as exc:
        raise SystemExit(f"hcore: {exc}") from None

    async def serve() -> int:
        return await serve_until_signalled(proxy, options.endpoints)

    return run_async(args.loop, serve)
