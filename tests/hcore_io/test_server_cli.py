"""The ``hcore`` command: argument handling, ``hcore server`` and ``hcore demo``.

The commands run as subprocesses, each bounded in time.  Endpoint and
certificate helpers are checked here too.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.protocols.http2 import HTTP2ClientFactory
from hcore.protocols.http3 import HTTP3ClientFactory
from hcore_io import ConnectError
from hcore_io.cli import build_parser, main
from hcore_io.cli._server import load_app
from hcore_io.cli._workers import resolve_ports, supervise
from hcore_io.connections import HTTPOverQUICOpener, HTTPOverTCPOpener
from hcore_io.server import ASGIServer, Endpoint, generate_certificate, parse_endpoint

from .conftest import SocketBackend
from .server_apps import app
from .server_helpers import fetch

ROOT = Path(__file__).resolve().parents[2]


def _hcore(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from hcore_io.cli import main; raise SystemExit(main())",
        *args,
    ]


def test_parse_endpoint() -> None:
    assert parse_endpoint("http://127.0.0.1:8000") == Endpoint(
        "http", "127.0.0.1", 8000
    )
    assert parse_endpoint("https://[::1]:0") == Endpoint("https", "::1", 0)
    assert str(parse_endpoint("https://[::1]:443")) == "https://[::1]:443"
    assert parse_endpoint("https://localhost:1/").tls
    for bad in (
        "ftp://x:1",
        "http://x",
        "http://x:1/path",
        "http://:80",
        "http://u@x:1",
        "http://x:99999",
    ):
        with pytest.raises(ValueError):
            parse_endpoint(bad)


def test_generate_certificate(tmp_path: Path) -> None:
    generated = generate_certificate(tmp_path, ("localhost", "127.0.0.1"))
    assert generated.cert_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    assert b"PRIVATE KEY" in generated.key_file.read_bytes()
    assert generated.client_tls_config().cafile == str(generated.ca_file)
    assert generated.server_tls_config().keyfile == str(generated.key_file)
    with pytest.raises(ValueError):
        generate_certificate(tmp_path, ())


def test_parser_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert "server" in out
    assert "demo" in out


def test_load_app() -> None:
    app = load_app("tests.hcore_io.server_apps:app")
    assert callable(app)
    for bad in ("nocolon", "no_such_module_xyz:app", "tests.hcore_io.server_apps:nope"):
        with pytest.raises(SystemExit):
            load_app(bad)
    with pytest.raises(SystemExit, match="not callable"):
        load_app("tests.hcore_io.server_apps:EVENTS")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "at least 1"),
        (["https://127.0.0.1:0"], "--cert"),
        (["ftp://127.0.0.1:0"], "scheme"),
    ],
)
def test_server_argument_errors(args: list[str], message: str) -> None:
    endpoint = [] if any("://" in a for a in args) else ["http://127.0.0.1:0"]
    with pytest.raises(SystemExit, match=re.escape(message)):
        main(["server", "tests.hcore_io.server_apps:app", *endpoint, *args])


@pytest.mark.timeout(90)
@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_demo_runs_and_exits_0(loop: str) -> None:
    result = subprocess.run(
        _hcore("demo", "--loop", loop),
        capture_output=True,
        text=True,
        timeout=80,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for version in ("HTTP/1.1", "HTTP/2", "HTTP/3"):
        row = next(line for line in lines if line.startswith(version + " "))
        assert f" {version} " in row
        assert " 200 " in row
    sse = next(line for line in lines if line.startswith("SSE "))
    assert " 200 " in sse
    assert "3 events in 2 requests (Last-Event-ID: 3 on reconnecting)" in sse
    websockets = [line for line in lines if line.startswith("WebSocket ")]
    for row, (version, status) in zip(
        websockets, [("HTTP/1.1", 101), ("HTTP/2", 200), ("HTTP/3", 200)], strict=True
    ):
        assert f" {version} " in row and f" {status} " in row
        assert "echo 'hello over WebSocket'" in row and "close 1000" in row
    assert "all three versions answered" in result.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("loop", ["asyncio", "trio"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_server_command_serves_and_stops_on_signal(
    loop: str, signum: signal.Signals, tmp_path: Path, networking_backend: str
) -> None:
    certificate = generate_certificate(tmp_path)
    command = _hcore(
        "server",
        "tests.hcore_io.server_apps:lifespan_app",
        "http://127.0.0.1:0",
        "https://127.0.0.1:0",
        "--cert",
        str(certificate.cert_file),
        "--key",
        str(certificate.key_file),
        "--loop",
        loop,
        "--networking",
        networking_backend,
    )
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        ports: list[int] = []
        # Bounded: the server prints its two endpoints, or the test times out.
        while len(ports) < 2:
            line = process.stderr.readline()
            assert line, "the server exited before it was ready"
            found = re.search(r"hcore: serving on https?://127\.0\.0\.1:(\d+)", line)
            if found:
                ports.append(int(found.group(1)))
        http_port, https_port = ports
        for url in (
            f"http://127.0.0.1:{http_port}/state",
            f"https://localhost:{https_port}/state",
        ):
            curl = subprocess.run(
                [
                    "curl",
                    "--silent",
                    "--max-time",
                    "10",
                    "--cacert",
                    str(certificate.ca_file),
                    "--resolve",
                    f"localhost:{https_port}:127.0.0.1",
                    url,
                ],
                capture_output=True,
                timeout=20,
                check=False,
            )
            assert curl.stdout == b"yes"
        process.send_signal(signum)
        assert process.wait(timeout=20) == 0
        rest = process.stderr.read()
        assert "shutting down gracefully" in rest
        assert '"GET /state HTTP/1.1" 200 3' in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_http3_only_server(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> None:
    server = ASGIServer(
        app,
        tls_config=server_tls_config,
        http1=False,
        http2=False,
        networking=networking,
    )
    async with anyio.create_task_group() as group:
        (endpoint,) = await group.start(server.serve, ["https://127.0.0.1:0"])
        opener = HTTPOverQUICOpener(
            HTTP3ClientFactory(), tls_config=client_tls_config, networking=networking
        )
        connection = await opener(("127.0.0.1", endpoint.port), server_name="localhost")
        async with connection:
            response = await fetch(connection, "GET", "/")
        assert response.body == b"hello"
        # No TCP listener.
        with pytest.raises(ConnectError):
            await HTTPOverTCPOpener(
                HTTP2ClientFactory(),
                tls_config=client_tls_config,
                networking=networking,
            )(("127.0.0.1", endpoint.port), server_name="localhost")
        await server.shutdown()


@pytest.mark.timeout(90)
def test_workers_share_the_port_and_are_restarted(
    tmp_path: Path, networking_backend: str
) -> None:
    certificate = generate_certificate(tmp_path)
    process = subprocess.Popen(
        _hcore(
            "server",
            "tests.hcore_io.server_apps:app",
            "https://127.0.0.1:0",
            "--cert",
            str(certificate.cert_file),
            "--key",
            str(certificate.key_file),
            "--workers",
            "2",
            "--networking",
            networking_backend,
        ),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    pids: list[int] = []
    stopped = False
    try:
        assert process.stderr is not None
        ports: list[int] = []
        # Bounded: both workers start and report, or the test times out.
        while len(pids) < 2 or len(ports) < 2:
            line = process.stderr.readline()
            assert line, "the server exited before it was ready"
            pids += [
                int(p) for p in re.findall(r"worker \d started \(pid (\d+)\)", line)
            ]
            # One "hcore: serving on" line per worker (the log line of the
            # same event is not counted: it would let one worker count twice).
            ports += [
                int(p)
                for p in re.findall(
                    r"^hcore: serving on https://127\.0\.0\.1:(\d+)", line
                )
            ]
        assert ports[0] == ports[1]
        port = ports[0]

        def get() -> bytes:
            result = subprocess.run(
                [
                    "curl",
                    "--silent",
                    "--show-error",
                    "--max-time",
                    "10",
                    "--cacert",
                    str(certificate.ca_file),
                    "--resolve",
                    f"localhost:{port}:127.0.0.1",
                    f"https://localhost:{port}/",
                ],
                capture_output=True,
                timeout=20,
                check=False,
            )
            # On failure, show why (and what the workers said).
            return result.stdout or result.stderr

        assert [get() for _ in range(4)] == [b"hello"] * 4
        os.kill(pids[0], signal.SIGKILL)
        # Bounded: the supervisor restarts the worker, or the test times out.
        while True:
            line = process.stderr.readline()
            assert line, "the server exited instead of restarting the worker"
            if "restarting" in line:
                break
        assert [get() for _ in range(4)] == [b"hello"] * 4
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        stopped = True
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        # Workers run in sessions of their own: a failed test kills them
        # too (after a clean stop their ids may belong to others already).
        for pid in pids if not stopped else ():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if process.stderr is not None:
            process.stderr.close()


def test_resolve_ports_gives_concrete_shared_ports() -> None:
    endpoints = [
        parse_endpoint("http://127.0.0.1:0"),
        parse_endpoint("https://127.0.0.1:0"),
    ]
    resolved = resolve_ports([*endpoints, parse_endpoint("http://127.0.0.1:8123")])
    assert all(endpoint.port for endpoint in resolved)
    assert resolved[2].port == 8123
    assert [e.scheme for e in resolved] == ["http", "https", "http"]


@pytest.mark.timeout(60)
def test_supervise_stops_a_crash_loop(capfd: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    status = supervise([sys.executable, "-c", "raise SystemExit(3)"], 2, 1.0)
    assert status == 1
    assert time.monotonic() - start < 30
    assert capfd.readouterr().err.count("started (pid") > 10
