"""``hcore client URL``: run as a subprocess against the test server.

The server runs in the test's event loop (asyncio and Trio) on real
sockets, and the command on the same socket backend (both are tested);
each command is a separate Python process.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.cli import build_parser
from hcore_io.cli._client import Progress

from .client_helpers import client_server, pattern
from .conftest import SocketBackend

pytestmark = pytest.mark.anyio


async def _hcore(
    networking: str, *args: str, stdin: bytes = b"", check: bool = True
) -> tuple[int, bytes, str]:
    """Run ``hcore client --networking networking ARGS``."""
    command = [
        sys.executable,
        "-c",
        "import sys; from hcore_io.cli import main; sys.exit(main())",
        "client",
        "--networking",
        networking,
        *args,
    ]
    with anyio.fail_after(60):
        result = await anyio.run_process(command, input=stdin, check=False)
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result.returncode, result.stdout, result.stderr.decode()


def test_parser_registers_client() -> None:
    args = build_parser().parse_args(
        ["client", "https://x/", "-X", "PUT", "-H", "a: b", "--http3", "-v"]
    )
    assert (args.method, args.headers, args.http3, args.verbose) == (
        "PUT",
        ["a: b"],
        True,
        True,
    )


async def test_get_verbose_and_output_file(
    tmp_path: Path,
    server_tls_config: ServerTLSConfig,
    networking: SocketBackend,
    networking_backend: str,
) -> None:
    async with client_server(networking, server_tls_config) as server:
        _, out, err = await _hcore(
            networking_backend, server.url("/bytes/5000"), "-v", "-H", "X-Test: 1"
        )
        assert out == pattern(5000)
        assert "< HTTP/1.1 200" in err and "> x-test: 1" in err
        assert "< content-length: 5000" in err
        target = tmp_path / "body"
        _, out, err = await _hcore(
            networking_backend, server.url("/bytes/3000000"), "-o", str(target)
        )
        assert target.read_bytes() == pattern(3_000_000)
        # Not a terminal: no progress bar.
        assert (out, err) == (b"", "")


async def test_bodies_from_text_file_and_stdin(
    tmp_path: Path,
    server_tls_config: ServerTLSConfig,
    networking: SocketBackend,
    networking_backend: str,
) -> None:
    source = tmp_path / "upload"
    source.write_bytes(pattern(2_500_000))
    async with client_server(networking, server_tls_config) as server:
        _, out, _ = await _hcore(
            networking_backend, server.url("/echo"), "-d", f"@{source}"
        )
        assert out == pattern(2_500_000)
        _, out, _ = await _hcore(
            networking_backend, server.url("/echo"), "-d", "@-", stdin=b"from stdin"
        )
        assert out == b"from stdin"
        _, out, _ = await _hcore(
            networking_backend, server.url("/headers"), "-X", "PUT", "-d", "text"
        )
        assert b":method: PUT" in out and out.endswith(b"body: text")


async def test_versions_and_tls_options(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
    networking_backend: str,
) -> None:
    assert client_tls_config.cafile is not None
    cacert = client_tls_config.cafile
    async with client_server(networking, server_tls_config, quic=True) as server:
        assert server.quic is not None
        https = server.url("/ok", tls=True)
        _, out, err = await _hcore(networking_backend, https, "--cacert", cacert, "-v")
        assert out == b"ok" and "< HTTP/2 200" in err
        _, out, err = await _hcore(
            networking_backend, https, "--insecure", "--http1", "-v"
        )
        assert out == b"ok" and "< HTTP/1.1 200" in err
        _, _, err = await _hcore(networking_backend, server.url("/ok"), "--http2", "-v")
        assert "< HTTP/2 200" in err
        quic = f"https://127.0.0.1:{server.quic[1]}/ok"
        _, out, err = await _hcore(
            networking_backend, quic, "--http3", "--cacert", cacert, "-v"
        )
        assert out == b"ok" and "< HTTP/3 200" in err
        # The system trust store does not know the test CA.
        status, _, err = await _hcore(networking_backend, https, check=False)
        assert status == 1 and "ConnectError" in err
        status, _, _ = await _hcore(
            networking_backend, server.url("/missing"), "-f", check=False
        )
        assert status == 22
        status, _, err = await _hcore(
            networking_backend, server.url("/ok"), "-H", "bad", check=False
        )
        assert status == 2 and "invalid header" in err


def test_progress_bar_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert not Progress.wanted(io.StringIO(), 10 << 20)
    terminal = Terminal()
    assert not Progress.wanted(terminal, 1000)
    assert Progress.wanted(terminal, 10 << 20) and Progress.wanted(terminal, None)
    progress = Progress(terminal, 4 << 20)
    for step in range(4):
        progress.update(1 << 20, step * 0.5)
    progress.finish(2.0)
    text = terminal.getvalue()
    assert "\r[" in text and "100%" in text and text.endswith("\n")
    unknown = Progress(terminal, None)
    unknown.update(1 << 20, 0.0)
    unknown.finish(1.0)
    assert "MiB/s" in terminal.getvalue()
