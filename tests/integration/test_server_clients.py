"""hcore's ASGIServer against popular clients: wrk, httpx and aiohttp.

The application is :func:`tests.hcore_io.server_apps.app`, shaped like the
common frameworks' apps: routing, JSON, a streaming response and a request
body echoed back.  The server runs in the test's event loop (asyncio and
Trio) on each socket backend; wrk is a subprocess, httpx runs in the test's
loop, aiohttp (asyncio only) in a loop of its own in a worker thread.  A
missing client fails the test.

The ``hcore server``, ``hcore client`` and ``hcore proxy`` commands are run
end to end with ``--networking epoll`` on every ``--loop``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio
import httpx
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.server import ASGIServer, generate_certificate
from tests.hcore_io.conftest import SocketBackend
from tests.hcore_io.server_apps import app

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
#: The request body echoed back: 1 MiB, sent in 64 KiB pieces.
BODY = bytes(range(256)) * 4096
PIECE = 65536
#: How long wrk loads the server, in seconds.
WRK_SECONDS = 3


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is needed by this test and is not installed"
    return path


@dataclass
class Served:
    """A server under test and where it listens."""

    server: ASGIServer
    http_port: int
    https_port: int


@asynccontextmanager
async def _serving(
    networking: SocketBackend, server_tls_config: ServerTLSConfig
) -> AsyncIterator[Served]:
    server = ASGIServer(
        app, tls_config=server_tls_config, networking=networking, http3=False
    )
    async with anyio.create_task_group() as group:
        http, https = await group.start(
            server.serve, ["http://127.0.0.1:0", "https://127.0.0.1:0"]
        )
        try:
            yield Served(server, http.port, https.port)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await server.shutdown(timeout=2)
            group.cancel_scope.cancel()


def _ssl_context(client_tls_config: ClientTLSConfig) -> ssl.SSLContext:
    assert client_tls_config.cafile is not None
    return ssl.create_default_context(cafile=client_tls_config.cafile)


# -- wrk ---------------------------------------------------------------------------


@dataclass
class WrkResult:
    """What wrk's report says."""

    requests: int
    socket_errors: dict[str, int]
    non_2xx_3xx: int


def parse_wrk(output: str) -> WrkResult:
    """Read the request count and the failures out of wrk's report.

    wrk prints the ``Socket errors`` and ``Non-2xx or 3xx responses`` lines
    only when there were some.
    """
    requests = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    assert requests is not None, f"no request count in wrk's report:\n{output}"
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
        output,
    )
    counts = [0, 0, 0, 0] if errors is None else [int(n) for n in errors.groups()]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        int(requests.group(1)),
        dict(zip(("connect", "read", "write", "timeout"), counts, strict=True)),
        0 if non_2xx is None else int(non_2xx.group(1)),
    )


def test_parse_wrk_reads_failures() -> None:
    report = (
        "Running 3s test @ http://127.0.0.1:1/\n"
        "  1 threads and 8 connections\n"
        "  1234 requests in 3.00s, 100.00KB read\n"
        "  Socket errors: connect 0, read 2, write 0, timeout 1\n"
        "  Non-2xx or 3xx responses: 7\n"
        "Requests/sec:    411.33\n"
    )
    assert parse_wrk(report) == WrkResult(
        1234, {"connect": 0, "read": 2, "write": 0, "timeout": 1}, 7
    )
    clean = parse_wrk("  99 requests in 1.00s, 1.00KB read\n")
    assert clean == WrkResult(
        99, {"connect": 0, "read": 0, "write": 0, "timeout": 0}, 0
    )


#: A wrk script that cycles through the app's routes: hello, JSON, a
#: streamed response and a 4 KiB body echoed back.
WRK_SCRIPT = """
local requests = {}
local counter = 0
-- Built in init: wrk adds the Host field to wrk.headers only then.
init = function(args)
  local body = string.rep("x", 4096)
  requests = {
    wrk.format("GET", "/"),
    wrk.format("GET", "/json?q=1"),
    wrk.format("GET", "/stream/16"),
    wrk.format("POST", "/echo", {["Content-Length"] = "4096"}, body),
  }
end
request = function()
  counter = counter + 1
  return requests[counter % #requests + 1]
end
"""


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
async def test_wrk_http1(
    tls: bool,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    tmp_path: Path,
) -> None:
    script = tmp_path / "routes.lua"
    script.write_text(WRK_SCRIPT)
    async with _serving(networking, server_tls_config) as served:
        scheme = "https" if tls else "http"
        port = served.https_port if tls else served.http_port
        with anyio.fail_after(WRK_SECONDS + 30):
            result = await anyio.run_process(
                [
                    _tool("wrk"),
                    "--threads=1",
                    "--connections=8",
                    f"--duration={WRK_SECONDS}s",
                    "--timeout=10s",
                    f"--script={script}",
                    f"{scheme}://127.0.0.1:{port}/",
                ],
                check=False,
            )
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 0, output + result.stderr.decode(errors="replace")
    report = parse_wrk(output)
    assert report.requests > 0, output
    assert report.socket_errors == dict.fromkeys(report.socket_errors, 0), output
    assert report.non_2xx_3xx == 0, output


# -- httpx -------------------------------------------------------------------------


async def _body_pieces() -> AsyncIterator[bytes]:
    for offset in range(0, len(BODY), PIECE):
        yield BODY[offset : offset + PIECE]


@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_httpx(
    version: str,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    expected = "HTTP/2" if version == "2" else "HTTP/1.1"
    async with _serving(networking, server_tls_config) as served:
        base = f"https://127.0.0.1:{served.https_port}"
        with anyio.fail_after(60):
            async with httpx.AsyncClient(
                verify=_ssl_context(client_tls_config),
                http1=version == "1.1",
                http2=version == "2",
            ) as client:
                hello = await client.get(f"{base}/")
                assert (hello.status_code, hello.content) == (200, b"hello")
                assert hello.http_version == expected

                scope = (await client.get(f"{base}/json?q=1")).json()
                assert scope["http_version"] == version
                assert scope["path"] == "/json"
                assert scope["query_string"] == "q=1"
                assert scope["scheme"] == "https"

                chunks = []
                async with client.stream("GET", f"{base}/stream/32") as streamed:
                    assert streamed.status_code == 200
                    async for chunk in streamed.aiter_bytes():
                        chunks.append(chunk)
                body = b"".join(chunks)
                assert len(body) == 32 * 1024
                assert body[:1024] == b"A" * 1024

                echoed = await client.post(f"{base}/echo", content=_body_pieces())
                assert echoed.status_code == 200
                assert echoed.content == BODY

                missing = await client.get(f"{base}/nowhere")
                assert missing.status_code == 404
                assert missing.json() == {"error": "not found"}

                # Concurrent requests: one connection's streams on HTTP/2.
                results: list[httpx.Response] = []

                async def one(index: int) -> None:
                    results.append(await client.get(f"{base}/json?i={index}"))

                async with anyio.create_task_group() as group:
                    for index in range(20):
                        group.start_soon(one, index)
                assert sorted(r.json()["query_string"] for r in results) == sorted(
                    f"i={index}" for index in range(20)
                )
                assert {r.http_version for r in results} == {expected}


async def test_httpx_plain_http(
    networking: SocketBackend, server_tls_config: ServerTLSConfig
) -> None:
    async with _serving(networking, server_tls_config) as served:
        base = f"http://127.0.0.1:{served.http_port}"
        with anyio.fail_after(30):
            async with httpx.AsyncClient() as client:
                echoed = await client.post(f"{base}/echo", content=BODY)
                assert echoed.content == BODY
                scope = (await client.get(f"{base}/json")).json()
                assert (scope["http_version"], scope["scheme"]) == ("1.1", "http")


# -- aiohttp -----------------------------------------------------------------------


async def _aiohttp_checks(base: str, context: ssl.SSLContext | None) -> list[str]:
    """Run the app's routes with aiohttp; return what went wrong, if anything."""
    problems: list[str] = []
    connector = aiohttp.TCPConnector(ssl=context if context is not None else False)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"{base}/") as hello:
            if (hello.status, await hello.read()) != (200, b"hello"):
                problems.append(f"GET /: {hello.status}")
            if hello.version != aiohttp.HttpVersion11:
                problems.append(f"version {hello.version}")
        async with session.get(f"{base}/json", params={"q": "1"}) as scoped:
            scope = json.loads(await scoped.read())
            if (scope["http_version"], scope["query_string"]) != ("1.1", "q=1"):
                problems.append(f"scope {scope}")
        async with session.get(f"{base}/stream/32") as streamed:
            chunks = [chunk async for chunk in streamed.content.iter_chunked(4096)]
            if b"".join(chunks) != b"".join(
                bytes([65 + index % 26]) * 1024 for index in range(32)
            ):
                problems.append("streamed body differs")

        async def pieces() -> AsyncIterator[bytes]:
            for offset in range(0, len(BODY), PIECE):
                yield BODY[offset : offset + PIECE]

        async with session.post(f"{base}/echo", data=pieces()) as echoed:
            if await echoed.read() != BODY:
                problems.append("echoed body differs")
        async with session.get(f"{base}/nowhere") as missing:
            if missing.status != 404 or json.loads(await missing.read()) != {
                "error": "not found"
            }:
                problems.append(f"GET /nowhere: {missing.status}")
        # Concurrent requests over the session's pool of connections.
        responses = await asyncio.gather(
            *(session.get(f"{base}/json", params={"i": str(i)}) for i in range(20))
        )
        seen = []
        for response in responses:
            async with response:
                seen.append(json.loads(await response.read())["query_string"])
        if sorted(seen) != sorted(f"i={i}" for i in range(20)):
            problems.append(f"concurrent answers: {seen}")
    return problems


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
async def test_aiohttp(
    tls: bool,
    networking: SocketBackend,
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
) -> None:
    async with _serving(networking, server_tls_config) as served:
        if tls:
            base = f"https://127.0.0.1:{served.https_port}"
            context: ssl.SSLContext | None = _ssl_context(client_tls_config)
        else:
            base = f"http://127.0.0.1:{served.http_port}"
            context = None
        with anyio.fail_after(60):
            problems = await anyio.to_thread.run_sync(
                lambda: asyncio.run(_aiohttp_checks(base, context))
            )
    assert problems == []


# -- the commands with --networking epoll ----------------------------------------


def _hcore(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from hcore_io.cli import main; raise SystemExit(main())",
        *args,
    ]


@contextmanager
def _command(arguments: Sequence[str], endpoints: int) -> Iterator[list[int]]:
    """Run an ``hcore`` serving command; yield its ports; stop it with SIGTERM."""
    process = subprocess.Popen(
        _hcore(*arguments),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        ports: list[int] = []
        # Bounded: the command prints its endpoints, or the test times out.
        while len(ports) < endpoints:
            line = process.stderr.readline()
            assert line, "the command exited before it was ready"
            found = re.search(r"hcore: serving on https?://127\.0\.0\.1:(\d+)", line)
            if found:
                ports.append(int(found.group(1)))
        yield ports
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert "shutting down gracefully" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def _client(*arguments: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        _hcore("client", "--networking", "epoll", *arguments),
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "trio"])
def test_server_client_and_proxy_commands_on_epoll(loop: str, tmp_path: Path) -> None:
    certificate = generate_certificate(tmp_path)
    server = (
        "server",
        "tests.hcore_io.server_apps:app",
        "http://127.0.0.1:0",
        "https://127.0.0.1:0",
        "--cert",
        str(certificate.cert_file),
        "--key",
        str(certificate.key_file),
        "--networking",
        "epoll",
        "--loop",
        loop,
    )
    with _command(server, 2) as (http_port, https_port):
        cases = [
            ("--http1", f"http://127.0.0.1:{http_port}/json", "1.1"),
            ("--http2", f"http://127.0.0.1:{http_port}/json", "2"),
            ("--http2", f"https://127.0.0.1:{https_port}/json", "2"),
            ("--http3", f"https://127.0.0.1:{https_port}/json", "3"),
        ]
        for flag, url, version in cases:
            result = _client(
                flag, "--cacert", str(certificate.ca_file), "--loop", loop, url
            )
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["http_version"] == version
        echoed = _client(
            "--loop", loop, "-d", "echo me", f"http://127.0.0.1:{http_port}/echo"
        )
        assert echoed.stdout == b"echo me", echoed.stderr

        proxy = ("proxy", "http://127.0.0.1:0", "--networking", "epoll", "--loop", loop)
        with _command(proxy, 1) as (proxy_port,):
            tunnelled = subprocess.run(
                [
                    _tool("curl"),
                    "--silent",
                    "--show-error",
                    "--max-time",
                    "20",
                    "--proxytunnel",
                    "--proxy",
                    f"http://127.0.0.1:{proxy_port}",
                    "--cacert",
                    str(certificate.ca_file),
                    f"https://127.0.0.1:{https_port}/",
                ],
                capture_output=True,
                timeout=30,
                check=False,
            )
            assert tunnelled.stdout == b"hello", tunnelled.stderr


def test_networking_must_be_a_known_backend(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hcore_io.cli import main

    for command in (
        ["server", "tests.hcore_io.server_apps:app", "http://127.0.0.1:0"],
        ["proxy", "http://127.0.0.1:0"],
        ["client", "http://127.0.0.1:1/"],
    ):
        with pytest.raises(SystemExit) as exited:
            main([*command, "--networking", "kqueue"])
        assert exited.value.code == 2
        assert "invalid choice: 'kqueue'" in capsys.readouterr().err
