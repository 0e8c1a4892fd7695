"""What several subcommands share: event loop choice and logging set-up."""

from __future__ import annotations

import argparse
import importlib.util
import logging
from collections.abc import Awaitable, Callable

import anyio

__all__ = ("LOOPS", "add_loop_argument", "configure_logging", "run_async")

#: The ``--loop`` choices.
LOOPS = ("asyncio", "uvloop", "trio")


def add_loop_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--loop asyncio|uvloop|trio``."""
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="asyncio",
        help="event loop to run on (uvloop only if it is installed)",
    )


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
