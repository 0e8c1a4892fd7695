"""What several subcommands share: event loop, networking backend, logging."""

from __future__ import annotations

import argparse
import importlib.util
import logging
from collections.abc import Awaitable, Callable

import anyio

from hcore_io.networking import EpollNetworking, SystemNetworking

__all__ = (
    "LOOPS",
    "NETWORKINGS",
    "add_loop_argument",
    "add_networking_argument",
    "configure_logging",
    "make_networking",
    "run_async",
)

#: The ``--loop`` choices.
LOOPS = ("asyncio", "uvloop", "trio")

#: The ``--networking`` choices.
NETWORKINGS = ("system", "epoll")


def add_loop_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--loop asyncio|uvloop|trio``."""
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="asyncio",
        help="event loop to run on (uvloop only if it is installed)",
    )


def add_networking_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--networking system|epoll``."""
    parser.add_argument(
        "--networking",
        choices=NETWORKINGS,
        default="system",
        help=(
            "networking backend: 'system' (AnyIO's sockets) or 'epoll' "
            "(raw sockets on one epoll per event loop, Linux only)"
        ),
    )


def make_networking(
    name: str, *, reuse_port: bool = False
) -> SystemNetworking | EpollNetworking:
    """The backend ``--networking`` names.

    :param name: one of :data:`NETWORKINGS`.
    :param reuse_port: bind listening sockets with ``SO_REUSEPORT``.
    :raises SystemExit: with a message, if this system lacks what it needs
        (epoll, ``SO_REUSEPORT``).
    """
    try:
        if name == "epoll":
            return EpollNetworking(reuse_port=reuse_port)
        return SystemNetworking(reuse_port=reuse_port)
    except (RuntimeError, NotImplementedError) as exc:
        raise SystemExit(f"hcore: --networking {name}: {exc}") from None


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``, with the time and the logger's name."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_async(loop: str, function: Callable[[], Awaitable[int]]) -> int:
    """Run ``function()`` on the chosen event loop; return its result.

    :raises SystemExit: with a message, if uvloop was chosen but is missing.
    """
    if loop == "uvloop":
        if importlib.util.find_spec("uvloop") is None:
            raise SystemExit(
                "hcore: --loop uvloop needs the uvloop package "
                "(pip install uvloop), which is not installed"
            )
        return anyio.run(
            function, backend="asyncio", backend_options={"use_uvloop": True}
        )
    return anyio.run(function, backend=loop)
