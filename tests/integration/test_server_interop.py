"""hcore's ASGIServer against real clients: curl, nghttp, h2load and gtlsclient.

The server runs in the test's event loop (asyncio and Trio); each client is
a subprocess with a bounded run time.  A missing client fails the test.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from tests.hcore_io.conftest import SocketBackend
from tests.hcore_io.server_apps import app
from tests.hcore_io.server_helpers import Running, running

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is needed by this test and is not installed"
    return path


async def _run(*command: str, timeout: float = 30) -> str:  # noqa: ASYNC109
    with anyio.fail_after(timeout):
        result = await anyio.run_process(list(command), check=False)
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 0, (
        f"{command[0]} exited with {result.returncode}:\n{output}\n"
        f"{result.stderr.decode(errors='replace')}"
    )
    return output


def _curl_base(served: Running, client_tls: ClientTLSConfig) -> list[str]:
    assert client_tls.cafile is not None
    return [
        _tool("curl"),
        "--silent",
        "--show-error",
        "--max-time",
        "20",
        "--cacert",
        client_tls.cafile,
        "--resolve",
        f"localhost:{served.https_port}:127.0.0.1",
    ]


@pytest.mark.parametrize(
    ("flag", "tls", "expected"),
    [
        ("--http1.1", False, "1.1"),
        ("--http1.1", True, "1.1"),
        ("--http2", True, "2"),
        ("--http2-prior-knowledge", False, "2"),
    ],
)
async def test_curl(
    flag: str,
    tls: bool,
    expected: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    tmp_path: Path,
    networking: SocketBackend,
) -> None:
    body_file = tmp_path / "body"
    body = bytes(range(256)) * 4096  # 1 MiB
    body_file.write_bytes(body)
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        base = [*_curl_base(served, client_tls_config), flag]
        origin = (
            f"https://localhost:{served.https_port}"
            if tls
            else f"http://127.0.0.1:{served.http_port}"
        )
        hello = await _run(
            *base, "--include", "--write-out", "\n%{http_version}", f"{origin}/"
        )
        assert hello.splitlines()[-1] == expected
        assert "hello" in hello
        if tls:
            assert re.search(r'(?im)^alt-svc: h3=":\d+"; ma=86400', hello)
        digest = await _run(*base, "--data-binary", f"@{body_file}", f"{origin}/digest")
        assert digest == hashlib.sha256(body).hexdigest()
        echoed = tmp_path / "echoed"
        await _run(
            *base,
            "--data-binary",
            f"@{body_file}",
            "--output",
            str(echoed),
            f"{origin}/echo",
        )
        assert echoed.read_bytes() == body
        streamed = await _run(*base, f"{origin}/stream/100")
        assert len(streamed) == 100 * 1024
        crashed = await _run(*base, "--write-out", "%{http_code}", f"{origin}/crash")
        assert crashed.endswith("500")
        if flag != "--http2-prior-knowledge":
            # Several requests on one connection (keep-alive, one HTTP/2
            # session).  Not with prior knowledge: curl 7.88 then fails its
            # second request with "Error in the HTTP2 framing layer" against
            # any server (Hypercorn too), having closed the connection itself.
            many = await _run(*base, *[f"{origin}/"] * 5)
            assert many == "hello" * 5


async def test_curl_rejects_big_headers_with_431(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app,
        server_tls_config,
        client_tls_config,
        max_header_size=2048,
        networking=networking,
    ) as served:
        code = await _run(
            *_curl_base(served, client_tls_config),
            "--http1.1",
            "--header",
            "x-big: " + "a" * 4000,
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
            f"http://127.0.0.1:{served.http_port}/",
        )
    assert code == "431"


@pytest.mark.parametrize("tls", [False, True])
async def test_nghttp(
    tls: bool,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    tmp_path: Path,
    networking: SocketBackend,
) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(b"n" * 200_000)
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        origin = (
            f"https://127.0.0.1:{served.https_port}"
            if tls
            else f"http://127.0.0.1:{served.http_port}"
        )
        nghttp = _tool("nghttp")
        output = await _run(nghttp, "--stat", f"{origin}/", f"{origin}/stream/20")
        assert "hello" in output
        verbose = await _run(
            nghttp, "--verbose", "--data", str(upload), f"{origin}/digest"
        )
        assert hashlib.sha256(b"n" * 200_000).hexdigest() in verbose
        assert ":status: 200" in verbose
        trailers = await _run(nghttp, "--verbose", f"{origin}/trailers")
        assert "x-checksum: abc123" in trailers


@pytest.mark.slow
async def test_h2load_100000_requests(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        output = await _run(
            _tool("h2load"),
            "--requests",
            "100000",
            "--clients",
            "10",
            "--max-concurrent-streams",
            "10",
            f"http://127.0.0.1:{served.http_port}/",
            timeout=240,
        )
    assert "100000 succeeded, 0 failed, 0 errored, 0 timeout" in output, output
    assert "status codes: 100000 2xx" in output


async def test_h2load_over_tls_and_http1(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        h2load = _tool("h2load")
        tls = await _run(
            h2load,
            "-n",
            "2000",
            "-c",
            "4",
            "-m",
            "10",
            f"https://127.0.0.1:{served.https_port}/",
        )
        assert "2000 succeeded, 0 failed" in tls
        assert "Application protocol: h2" in tls
        http1 = await _run(
            h2load,
            "--h1",
            "-n",
            "2000",
            "-c",
            "4",
            f"http://127.0.0.1:{served.http_port}/",
        )
        assert "2000 succeeded, 0 failed" in http1


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_gtlsclient_http3(
    method: str,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    tmp_path: Path,
    networking: SocketBackend,
) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as served:
        port = str(served.https_port)
        await _run(
            _tool("gtlsclient"),
            "--quiet",
            "--exit-on-all-streams-close",
            "--timeout=10s",
            f"--download={downloads}",
            f"--http-method={method}",
            "127.0.0.1",
            port,
            f"https://localhost:{port}/",
            f"https://localhost:{port}/stream/64",
        )
    files = {path.name: path.read_bytes() for path in downloads.iterdir()}
    if method == "GET":
        assert files["index.html"] == b"hello"
        assert len(files["64"]) == 64 * 1024
    else:
        assert all(content == b"" for content in files.values())
