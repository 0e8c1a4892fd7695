"""The ``hcore`` command: ``hcore server``, ``hcore demo``, and more.

Each subcommand lives in a module of its own that offers
``register(subparsers)``: it adds its parser with
``subparsers.add_parser(NAME, ...)`` and sets ``run`` with
``parser.set_defaults(run=FUNCTION)``, where ``FUNCTION(args) -> int`` runs
the command and returns the exit status.  A new subcommand is one module and
one entry in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TypeAlias

from hcore_io.cli import _client, _demo, _proxy, _server

__all__ = ("SUBCOMMANDS", "Subparsers", "build_parser", "main")

#: What ``register`` functions receive.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: The subcommands' ``register`` functions, in the order ``--help`` lists them.
SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    _server.register,
    _proxy.register,
    _demo.register,
    _client.register,
)


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="hcore",
        description="HTTP/1.1, HTTP/2 and HTTP/3 servers, clients and proxies.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hcore`` command.

    :param argv: the arguments; ``sys.argv[1:]`` if omitted.
    :return: the exit status.
    """
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)
