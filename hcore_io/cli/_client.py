"""``hcore client URL``: send one request and write the response body.

Like a small curl: ``-X`` method, ``-H`` header fields, ``-d`` body (text,
``@FILE`` streamed from a file, ``@-`` from stdin), ``--http1``/``--http2``/
``--http3`` to choose versions, ``--cacert``/``--insecure`` for TLS, ``-o``
to write the body to a file, ``-v`` to show the version and both header
blocks on stderr.  A download of at least 1 MiB draws a progress bar on
stderr when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, BinaryIO, TextIO

import anyio

from hcore import ClientTLSConfig, HCoreError
from hcore_io.cli._common import (
    add_loop_argument,
    add_networking_argument,
    make_networking,
    run_async,
)
from hcore_io.client import Client, RequestBody, Response, Timeouts

if TYPE_CHECKING:
    from hcore_io.cli import Subparsers

__all__ = ("Progress", "register", "run")

# Downloads smaller than this draw no progress bar.
_PROGRESS_THRESHOLD = 1 << 20
_PROGRESS_INTERVAL = 0.1
_BAR_WIDTH = 30
_FILE_CHUNK = 1 << 20


def register(subparsers: Subparsers) -> None:
    """Add the ``client`` subcommand."""
    parser = subparsers.add_parser(
        "client",
        help="send a request and print the response body",
        description="Send one HTTP request (HTTP/1.1, HTTP/2 or HTTP/3).",
    )
    parser.add_argument("url", metavar="URL", help="http:// or https:// URL")
    parser.add_argument("-X", "--request", dest="method", help="method (GET)")
    parser.add_argument(
        "-H",
        "--header",
        dest="headers",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a header field (repeatable)",
    )
    parser.add_argument(
        "-d",
        "--data",
        metavar="DATA",
        help="request body: text, @FILE (streamed) or @- (stdin); implies POST",
    )
    versions = parser.add_argument_group(
        "HTTP versions",
        "use only the versions given; by default HTTP/2 or HTTP/1.1 by ALPN, "
        "HTTP/3 when the server advertises it",
    )
    versions.add_argument("--http1", action="store_true", help="HTTP/1.1")
    versions.add_argument(
        "--http2", action="store_true", help="HTTP/2 (h2c prior knowledge on http://)"
    )
    versions.add_argument("--http3", action="store_true", help="HTTP/3 (https only)")
    parser.add_argument("--cacert", metavar="FILE", help="trust these CAs (PEM)")
    parser.add_argument(
        "-k", "--insecure", action="store_true", help="do not verify the server"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the body here")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show version and headers"
    )
    parser.add_argument(
        "-L", "--location", action="store_true", help="follow redirects"
    )
    parser.add_argument(
        "-f", "--fail", action="store_true", help="exit with 22 on a 4xx or 5xx"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="connect and read timeout (s)"
    )
    add_loop_argument(parser)
    add_networking_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``hcore client``; return the exit status."""
    try:
        headers = [_parse_header(text) for text in args.headers]
    except ValueError as exc:
        print(f"hcore client: {exc}", file=sys.stderr)
        return 2
    stdin_body = None
    if args.data == "@-":
        stdin_body = sys.stdin.buffer.read()

    async def main() -> int:
        try:
            return await _request(args, headers, stdin_body)
        except (HCoreError, OSError, ValueError) as exc:
            print(f"hcore client: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1

    return run_async(args.loop, main)


def _parse_header(text: str) -> tuple[bytes, bytes]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise ValueError(f"invalid header {text!r}: use 'Name: value'")
    return name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")


def _versions(args: argparse.Namespace) -> tuple[str, ...]:
    chosen = tuple(
        version
        for flag, version in ((args.http1, "1.1"), (args.http2, "2"), (args.http3, "3"))
        if flag
    )
    return chosen or ("1.1", "2", "3")


async def _file_body(path: str) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as source:
        # Bounded by the file's size.
        while chunk := await source.read(_FILE_CHUNK):
            yield chunk


async def _request(
    args: argparse.Namespace,
    headers: list[tuple[bytes, bytes]],
    stdin_body: bytes | None,
) -> int:
    body: RequestBody = b""
    if stdin_body is not None:
        body = stdin_body
    elif args.data is not None and args.data.startswith("@"):
        body = _file_body(args.data[1:])
    elif args.data is not None:
        body = args.data.encode()
    method = args.method or ("POST" if args.data is not None else "GET")
    versions = _versions(args)
    tls = ClientTLSConfig(cafile=args.cacert, insecure=args.insecure)
    timeouts = Timeouts(connect=args.timeout, read=args.timeout, write=args.timeout)
    async with Client(
        networking=make_networking(args.networking),
        tls_config=tls,
        http_versions=versions,
        http2_prior_knowledge=versions == ("2",),
        timeouts=timeouts,
        follow_redirects=args.location,
    ) as client:
        async with client.stream(method, args.url, headers=headers, content=body) as r:
            if args.verbose:
                _show_headers(r, sys.stderr)
            if args.output:
                with open(args.output, "wb") as output:  # noqa: ASYNC230
                    await _copy(r, output, sys.stderr)
            else:
                await _copy(r, sys.stdout.buffer, sys.stderr)
    return 22 if args.fail and r.status >= 400 else 0


def _show_headers(response: Response, err: TextIO) -> None:
    request = response.request
    print(f"* HTTP/{response.http_version} to {request.url.origin}", file=err)
    for name, value in request.header_block():
        print(f"> {name.decode('latin-1')}: {value.decode('latin-1')}", file=err)
    print(f"< HTTP/{response.http_version} {response.status}", file=err)
    for name, value in response.headers:
        print(f"< {name.decode('latin-1')}: {value.decode('latin-1')}", file=err)
    print("<", file=err)


async def _copy(response: Response, output: BinaryIO, err: TextIO) -> None:
    length_field = response.get_header(b"content-length")
    total = int(length_field) if length_field and length_field.isdigit() else None
    progress = Progress(err, total) if Progress.wanted(err, total) else None
    async for chunk in response.stream:
        output.write(chunk)
        if progress is not None:
            progress.update(len(chunk), anyio.current_time())
    output.flush()
    if progress is not None:
        progress.finish(anyio.current_time())


class Progress:
    """A one-line progress bar on a terminal.

    :param out: where to draw (stderr).
    :param total: expected bytes, if known.
    """

    def __init__(self, out: TextIO, total: int | None) -> None:
        self._out = out
        self._total = total
        self._done = 0
        self._started: float | None = None
        self._drawn = 0.0

    @staticmethod
    def wanted(out: TextIO, total: int | None) -> bool:
        """Whether to draw: ``out`` is a terminal and the download is large."""
        return out.isatty() and (total is None or total >= _PROGRESS_THRESHOLD)

    def update(self, received: int, now: float) -> None:
        """Count ``received`` more bytes; redraw at most ten times a second."""
        if self._started is None:
            self._started = now
        self._done += received
        if now - self._drawn >= _PROGRESS_INTERVAL:
            self._drawn = now
            self._draw(now)

    def finish(self, now: float) -> None:
        """Draw the final state and end the line."""
        if self._started is None:
            self._started = now
        self._draw(now)
        self._out.write("\n")
        self._out.flush()

    def _draw(self, now: float) -> None:
        assert self._started is not None
        elapsed = max(now - self._started, 1e-6)
        rate = self._done / elapsed / (1 << 20)
        mib = self._done / (1 << 20)
        if self._total:
            fraction = min(self._done / self._total, 1.0)
            filled = int(fraction * _BAR_WIDTH)
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            line = f"[{bar}] {fraction:4.0%} {mib:8.1f} MiB {rate:7.1f} MiB/s"
        else:
            line = f"{mib:8.1f} MiB {rate:7.1f} MiB/s"
        self._out.write("\r" + line)
        self._out.flush()
