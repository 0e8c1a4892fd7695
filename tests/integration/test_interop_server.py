"""Real clients against our server: curl, nghttp, h2load and gtlsclient.

Our server runs in the test's event loop (asyncio or Trio) on real sockets;
each client runs as a subprocess.  Bodies of 0 bytes, 13 bytes and 16 MiB
go both ways and are checked by SHA-256.  A missing client fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from tests.hcore_io.conftest import SocketBackend
from tests.hcore_io.connection_helpers import digest, pattern

from .interop_peers import SIZES, our_server, require, write_body

pytestmark = pytest.mark.anyio

# flags, scheme, the HTTP version curl must report
CURL_MODES = {
    "http1.1-tls": (["--http1.1"], "https", "1.1"),
    "http1.1-plain": (["--http1.1"], "http", "1.1"),
    "http2-tls": (["--http2"], "https", "2"),
    "http2-prior-knowledge": (["--http2-prior-knowledge"], "http", "2"),
}


async def _run(command: list[str]) -> str:
    with anyio.fail_after(60):
        result = await anyio.run_process(command, check=False)
    assert result.returncode == 0, (command, result.stderr.decode(errors="replace"))
    return result.stdout.decode(errors="replace")


@pytest.mark.parametrize("mode", list(CURL_MODES))
async def test_curl(
    mode: str,
    tmp_path: Path,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    curl = require("curl")
    flags, scheme, version = CURL_MODES[mode]
    assert client_tls_config.cafile is not None
    common = [curl, "-sS", "--fail", *flags, "--cacert", client_tls_config.cafile]
    async with our_server(server_tls_config, networking=networking) as server:
        port = server.https_port if scheme == "https" else server.http_port
        base = f"{scheme}://localhost:{port}"
        for size in SIZES:
            downloaded = tmp_path / f"down-{size}"
            fetch = [
                "-o",
                str(downloaded),
                "-w",
                "%{http_version}",
                f"{base}/bytes/{size}",
            ]
            reported = await _run([*common, *fetch])
            assert reported == version
            assert digest(downloaded.read_bytes()) == digest(pattern(size))
            body = write_body(tmp_path, size)
            answer = await _run(
                [*common, "--data-binary", f"@{body}", f"{base}/digest"]
            )
            assert answer == digest(pattern(size))
    assert server.app.errors == []


async def test_nghttp(
    tmp_path: Path, server_tls_config: ServerTLSConfig, networking: SocketBackend
) -> None:
    nghttp = require("nghttp")
    async with our_server(server_tls_config, networking=networking) as server:
        base = f"https://127.0.0.1:{server.https_port}"
        for size in SIZES:
            downloaded = tmp_path / f"down-{size}"
            with anyio.fail_after(60):
                result = await anyio.run_process(
                    [nghttp, f"{base}/bytes/{size}"], check=False
                )
            assert result.returncode == 0, result.stderr
            downloaded.write_bytes(result.stdout)
            assert digest(result.stdout) == digest(pattern(size))
            body = write_body(tmp_path, size)
            answer = await _run([nghttp, "-d", str(body), f"{base}/digest"])
            assert answer == digest(pattern(size))


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_h2load_ten_thousand_requests(
    scheme: str, server_tls_config: ServerTLSConfig, networking: SocketBackend
) -> None:
    h2load = require("h2load")
    async with our_server(server_tls_config, networking=networking) as server:
        port = server.https_port if scheme == "https" else server.http_port
        url = f"{scheme}://127.0.0.1:{port}/bytes/13"
        report = await _run([h2load, "-n", "10000", "-c", "10", "-m", "10", url])
    match = re.search(r"requests: (\d+) total.*?(\d+) succeeded, (\d+) failed", report)
    assert match is not None, report
    assert match.groups() == ("10000", "10000", "0"), report
    assert "status codes: 10000 2xx" in report


async def test_gtlsclient_http3(
    tmp_path: Path, server_tls_config: ServerTLSConfig, networking: SocketBackend
) -> None:
    gtlsclient = require("gtlsclient")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    common = [
        gtlsclient,
        "-q",
        "--exit-on-all-streams-close",
        "--download",
        str(downloads),
    ]
    async with our_server(server_tls_config, networking=networking) as server:
        target = ["127.0.0.1", str(server.quic_port)]
        base = f"https://127.0.0.1:{server.quic_port}"
        for size in SIZES:
            await _run([*common, *target, f"{base}/bytes/{size}"])
            saved = downloads / str(size)
            assert digest(saved.read_bytes()) == digest(pattern(size))
            # gtlsclient cannot map an empty file: no -d sends an empty body.
            data = ["-d", str(write_body(tmp_path, size))] if size else []
            await _run([*common, "-m", "POST", *data, *target, f"{base}/digest"])
            assert (downloads / "digest").read_text() == digest(pattern(size))
    assert server.app.errors == []
