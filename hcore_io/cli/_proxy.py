"""``hcore proxy ENDPOINT...``: a CONNECT tunnelling proxy.

SIGINT and SIGTERM stop it gracefully, as for ``hcore server``.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from hcore import ServerTLSConfig
from hcore_io.cli._common import add_loop_argument, configure_logging, run_async
from hcore_io.cli._server import parse_endpoints, serve_until_signalled
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
    add_loop_argument(parser)
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
    )
    parser.add_argument(
        "--no-access-log", action="store_true", help="do not log each tunnel"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``hcore proxy``."""
    endpoints = parse_endpoints(args.endpoints)
    tls_config = None
    if any(endpoint.tls for endpoint in endpoints):
        if not args.cert:
            raise SystemExit("hcore: https endpoints need --cert (and --key)")
        tls_config = ServerTLSConfig(certfile=args.cert, keyfile=args.key)
    chosen = args.http1 or args.http2 or args.http3
    configure_logging(args.log_level)
    if args.no_access_log:
        logging.getLogger("hcore.access").setLevel(logging.WARNING)
    try:
        proxy = ProxyServer(
            tls_config=tls_config,
            http1=args.http1 or not chosen,
            http2=args.http2 or not chosen,
            http3=args.http3 or not chosen,
            max_connections=args.max_connections,
            shutdown_timeout=args.shutdown_timeout,
            connect_timeout=args.connect_timeout,
            allowed_ports=args.allowed_ports,
        )
    except ValueError as exc:
        raise SystemExit(f"hcore: {exc}") from None

    async def serve() -> int:
        return await serve_until_signalled(proxy, endpoints)

    return run_async(args.loop, serve)
