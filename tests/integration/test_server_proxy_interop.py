"""hcore's ProxyServer against curl's proxy support (CONNECT over HTTP/1.1).

curl 7.88 speaks HTTP/1.1 to proxies, over plain TCP and over TLS (an
``https://`` proxy); HTTP/2 and HTTP/3 CONNECT are covered with hcore's
client in tests/hcore_io/test_server_proxy.py.  The proxy runs in the
test's event loop (asyncio and Trio), and once as the ``hcore proxy``
command.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.server import ProxyServer
from tests.hcore_io.conftest import SocketBackend
from tests.hcore_io.server_apps import app
from tests.hcore_io.server_helpers import running

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]


def _curl() -> str:
    path = shutil.which("curl")
    assert path is not None, "curl is needed by this test and is not installed"
    return path


async def _curl_through(
    proxy: str, url: str, upstream_port: int, ca_file: str, *extra: str
) -> str:
    command = [
        _curl(),
        "--silent",
        "--show-error",
        "--max-time",
        "20",
        "--proxytunnel",
        "--proxy",
        proxy,
        "--cacert",
        ca_file,
        "--proxy-cacert",
        ca_file,
        "--resolve",
        f"localhost:{upstream_port}:127.0.0.1",
        *extra,
        url,
    ]
    with anyio.fail_after(30):
        result = await anyio.run_process(command, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.mark.parametrize("proxy_tls", [False, True])
async def test_curl_through_the_proxy(
    proxy_tls: bool,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    assert client_tls_config.cafile is not None
    async with running(
        app, server_tls_config, client_tls_config, networking=networking
    ) as upstream:
        proxy = ProxyServer(
            tls_config=server_tls_config,
            networking=networking,
            client_networking=networking,
        )
        async with anyio.create_task_group() as group:
            http, https = await group.start(
                proxy.serve, ["http://127.0.0.1:0", "https://127.0.0.1:0"]
            )
            proxy_url = (
                f"https://localhost:{https.port}"
                if proxy_tls
                else f"http://127.0.0.1:{http.port}"
            )
            extra = (
                ["--resolve", f"localhost:{https.port}:127.0.0.1"] if proxy_tls else []
            )
            for flag, expected in (("--http1.1", "1.1"), ("--http2", "2")):
                out = await _curl_through(
                    proxy_url,
                    f"https://localhost:{upstream.https_port}/json",
                    upstream.https_port,
                    client_tls_config.cafile,
                    flag,
                    *extra,
                )
                assert f'"http_version": "{expected}"' in out
            plain = await _curl_through(
                proxy_url,
                f"http://127.0.0.1:{upstream.http_port}/stream/10",
                upstream.https_port,
                client_tls_config.cafile,
                *extra,
            )
            assert len(plain) == 10 * 1024
            await proxy.shutdown(timeout=2)


def test_proxy_command(tmp_path: Path, networking_backend: str) -> None:
    upstream = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hcore_io.cli import main; raise SystemExit(main())",
            "server",
            "tests.hcore_io.server_apps:app",
            "http://127.0.0.1:0",
            "--networking",
            networking_backend,
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hcore_io.cli import main; raise SystemExit(main())",
            "proxy",
            "http://127.0.0.1:0",
            "--networking",
            networking_backend,
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        ports = []
        for process in (upstream, proxy):
            assert process.stderr is not None
            # Bounded: the command prints its endpoint, or the test times out.
            while True:
                line = process.stderr.readline()
                assert line, "the command exited before it was ready"
                found = re.search(r"serving on http://127\.0\.0\.1:(\d+)", line)
                if found:
                    ports.append(int(found.group(1)))
                    break
        result = subprocess.run(
            [
                _curl(),
                "--silent",
                "--max-time",
                "10",
                "--proxytunnel",
                "--proxy",
                f"http://127.0.0.1:{ports[1]}",
                f"http://127.0.0.1:{ports[0]}/",
            ],
            capture_output=True,
            timeout=20,
            check=False,
        )
        assert result.stdout == b"hello"
        for process in (upstream, proxy):
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        assert proxy.stderr is not None
        assert f'"CONNECT 127.0.0.1:{ports[0]} HTTP/1.1" 200' in proxy.stderr.read()
    finally:
        for process in (upstream, proxy):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            if process.stderr is not None:
                process.stderr.close()
