"""Serving HTTP/1.1 with the httptools implementation, picked by its registry name.

``ASGIServer(http1_implementation="httptools")`` and ``hcore server
--http1-implementation httptools``; on asyncio and Trio, on both socket
backends, and the command as a subprocess fetched with curl.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.protocols.http1 import HTTP1ServerFactory, HTTPToolsServerFactory
from hcore_io.cli import main
from hcore_io.server import ASGIServer

from .conftest import SocketBackend
from .server_apps import app
from .server_helpers import fetch, running

ROOT = Path(__file__).resolve().parents[2]


def _http1_factory(server: ASGIServer) -> object:
    factory = server._tcp_factory()
    # With HTTP/2 on too, the prior-knowledge factory holds the HTTP/1.1 one.
    return getattr(factory, "_http1", factory)


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_asgi_server_serves_http1_with_httptools(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    async with running(
        app,
        server_tls_config,
        client_tls_config,
        networking=networking,
        http1_implementation="httptools",
    ) as served:
        assert isinstance(_http1_factory(served.server), HTTPToolsServerFactory)
        async with await served.connect("1.1") as connection:
            for _ in range(3):  # keep-alive: one connection, several requests
                hello = await fetch(connection, "GET", "/")
                assert (hello.status, hello.body) == (200, b"hello")
            body = bytes(range(256)) * 256
            echoed = await fetch(connection, "POST", "/echo", body)
            assert echoed.body == body
            streamed = await fetch(connection, "GET", "/stream/20")
            assert len(streamed.body) == 20 * 1024
            missing = await fetch(connection, "GET", "/missing")
            assert missing.status == 404


def test_default_and_unknown_implementations() -> None:
    assert isinstance(_http1_factory(ASGIServer(app)), HTTP1ServerFactory)
    with pytest.raises(ValueError, match=r"no HTTP/1\.1 implementation named 'nope'"):
        ASGIServer(app, http1_implementation="nope")
    with pytest.raises(SystemExit):
        main(
            [
                "server",
                "tests.hcore_io.server_apps:app",
                "http://127.0.0.1:0",
                "--http1-implementation",
                "nope",
            ]
        )


@pytest.mark.timeout(60)
def test_server_command_with_httptools() -> None:
    command = [
        sys.executable,
        "-c",
        "from hcore_io.cli import main; raise SystemExit(main())",
        "server",
        "tests.hcore_io.server_apps:app",
        "http://127.0.0.1:0",
        "--http1",
        "--http1-implementation",
        "httptools",
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        port = None
        # Bounded: the server says where it serves, or the test times out.
        while port is None:
            line = process.stderr.readline()
            assert line, "the server exited before it was ready"
            found = re.search(r"hcore: serving on http://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
        url = f"http://127.0.0.1:{port}/"
        curl = subprocess.run(
            ["curl", "--silent", "--max-time", "10", url, url],
            capture_output=True,
            timeout=20,
            check=False,
        )
        assert curl.stdout == b"hellohello"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
